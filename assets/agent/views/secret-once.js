// A secret shown once (an API token, a signing key, a webhook secret):
// read-only, with a copy button, and a warning that it will not be shown again.

import { copyText, h } from '../dom.js';
import { t } from '../i18n.js';

export function secretOnce(label, value) {
  const input = h('input', { class: 'input mono', readonly: true, value, 'aria-label': label, dataset: { secret: '' } });
  const copied = h('span', { class: 'muted', hidden: true }, t('secret.copied'));
  return h(
    'div',
    { class: 'card secret-once', role: 'status' },
    h('strong', {}, label),
    h('p', { class: 'muted' }, t('secret.once')),
    h(
      'div',
      { class: 'inline-fields' },
      input,
      h(
        'button',
        {
          type: 'button',
          class: 'btn btn--sm',
          onclick: async () => {
            copied.hidden = !(await copyText(value));
          },
        },
        t('secret.copy'),
      ),
      copied,
    ),
  );
}
