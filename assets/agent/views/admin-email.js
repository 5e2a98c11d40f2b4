// Admin: the email outbox — every mail the appliance sent or is trying to
// send for this organization, with its state and the relay's last answer.

import { get, qs } from '../api.js';
import { h, mount } from '../dom.js';
import { fullTime, t } from '../i18n.js';
import { statusLine } from './status-line.js';

export class EmailPage {
  constructor(root) {
    this.status = statusLine();
    this.rows = h('tbody', {});
    this.more = h('button', { type: 'button', class: 'btn btn--sm', hidden: true, onclick: () => this.load(true) }, t('audit.more'));
    this.cursor = null;
    mount(
      root,
      h(
        'div',
        { class: 'stack' },
        h('p', { class: 'muted' }, t('email.hint')),
        this.status.el,
        h(
          'table',
          { class: 'table card', dataset: { list: 'mails' } },
          h('thead', {}, h('tr', {}, [t('audit.when'), t('email.kind'), t('email.to'), t('email.state'), t('email.error')].map((c) => h('th', {}, c)))),
          this.rows,
        ),
        this.more,
      ),
    );
    this.load(false);
  }

  destroy() {}

  async load(append) {
    try {
      const page = await get(`/email/outbox${qs({ limit: 50, cursor: append ? this.cursor : null })}`);
      const rows = page.items.map((m) =>
        h(
          'tr',
          { dataset: { status: m.status } },
          h('td', {}, fullTime(m.createdAt)),
          h('td', {}, t(`email.kind.${m.kind.type}`)),
          h('td', { class: 'mono' }, m.to || ''),
          h('td', {}, t(`email.status.${m.status}`), m.attempts > 1 ? ` (${m.attempts})` : ''),
          h('td', { class: 'mono' }, m.lastError || ''),
        ),
      );
      if (append) this.rows.append(...rows);
      else mount(this.rows, rows.length ? rows : h('tr', {}, h('td', { class: 'muted', colSpan: 5 }, t('email.none'))));
      this.cursor = page.nextCursor;
      this.more.hidden = !page.nextCursor;
    } catch (e) {
      this.status.error(e);
    }
  }
}
