// Which agents of the organization are online (from the socket's
// `ready` and `agents:presence` frames).

import { h } from '../dom.js';
import { t } from '../i18n.js';
import { state } from '../store.js';

export function presenceList() {
  const online = [...state.online].sort((a, b) => (a.displayName || '').localeCompare(b.displayName || ''));
  return [
    h('h2', { class: 'presence__title' }, t('presence.title', { n: online.length })),
    h(
      'ul',
      { class: 'presence__list' },
      online.map((a) =>
        h(
          'li',
          { class: ['presence__agent', a.away && 'presence__agent--away'], dataset: { id: a.id } },
          h('span', { class: ['dot', a.away ? 'dot--away' : 'dot--online'], 'aria-hidden': 'true' }),
          a.displayName || t('thread.someone'),
          a.id === state.me?.id ? ` (${t('thread.you')})` : '',
          a.away ? ` · ${t('presence.away')}` : '',
        ),
      ),
    ),
  ];
}
