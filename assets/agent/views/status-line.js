// The status line of the admin forms: "Saved" or the server's message.

import { h } from '../dom.js';
import { t } from '../i18n.js';
import { errorText } from '../api.js';

/** A small status line for forms: "Saved" or the server's message. */
export function statusLine() {
  const el = h('p', { class: 'form-status', role: 'status', hidden: true });
  let timer = 0;
  return {
    el,
    ok(text) {
      el.textContent = text;
      el.className = 'form-status form-status--ok';
      el.hidden = false;
      clearTimeout(timer);
      timer = setTimeout(() => (el.hidden = true), 4000);
    },
    error(e) {
      el.textContent = errorText(e, t('error.generic'));
      el.className = 'form-status form-status--error';
      el.hidden = false;
      clearTimeout(timer);
    },
  };
}
