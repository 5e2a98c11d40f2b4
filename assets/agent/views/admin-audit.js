// Admin: the audit log — who did what to which object, when, from where;
// newest first, filtered by action and date, a page at a time.

import { get, qs } from '../api.js';
import { field, h, mount } from '../dom.js';
import { fullTime, t } from '../i18n.js';
import { statusLine } from './status-line.js';

export class AuditPage {
  constructor(root) {
    this.status = statusLine();
    this.rows = h('tbody', {});
    this.more = h('button', { type: 'button', class: 'btn btn--sm', hidden: true, onclick: () => this.load(true) }, t('audit.more'));
    this.cursor = null;
    const form = h(
      'form',
      { class: 'card inline-form', dataset: { form: 'audit-filter' } },
      h(
        'div',
        { class: 'inline-fields' },
        field(t('audit.action'), h('input', { class: 'input', name: 'action', maxlength: 100, placeholder: 'webhook.' })),
        field(t('audit.from'), h('input', { class: 'input', name: 'from', type: 'date' })),
        field(t('audit.to'), h('input', { class: 'input', name: 'to', type: 'date' })),
      ),
      h('button', { class: 'btn btn--primary', type: 'submit' }, t('audit.filter')),
    );
    this.form = form;
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      this.load(false);
    });
    mount(
      root,
      h(
        'div',
        { class: 'stack' },
        form,
        this.status.el,
        h(
          'table',
          { class: 'table card', dataset: { list: 'audit' } },
          h('thead', {}, h('tr', {}, [t('audit.when'), t('audit.who'), t('audit.action'), t('audit.target'), t('audit.ip')].map((c) => h('th', {}, c)))),
          this.rows,
        ),
        this.more,
      ),
    );
    this.load(false);
  }

  destroy() {}

  async load(append) {
    const f = this.form.elements;
    const day = (v, end) => (v ? new Date(`${v}T00:00:00Z`).getTime() + (end ? 86400000 : 0) : null);
    const from = day(f.namedItem('from').value, false);
    const to = day(f.namedItem('to').value, true);
    const query = {
      limit: 50,
      action: f.namedItem('action').value.trim() || null,
      from: from ? new Date(from).toISOString() : null,
      to: to ? new Date(to).toISOString() : null,
      cursor: append ? this.cursor : null,
    };
    try {
      const page = await get(`/audit-events${qs(query)}`);
      const rows = page.items.map((e) =>
        h(
          'tr',
          { dataset: { action: e.action } },
          h('td', {}, fullTime(e.at)),
          h('td', {}, e.actor.name || t(`audit.actor.${e.actor.kind}`)),
          h('td', { class: 'mono' }, e.action),
          h('td', { class: 'mono' }, e.target ? `${e.target.type} ${e.target.id}` : ''),
          h('td', { class: 'mono' }, e.ip || ''),
        ),
      );
      if (append) this.rows.append(...rows);
      else mount(this.rows, rows.length ? rows : h('tr', {}, h('td', { class: 'muted', colSpan: 5 }, t('audit.none'))));
      this.cursor = page.nextCursor;
      this.more.hidden = !page.nextCursor;
    } catch (e) {
      this.status.error(e);
    }
  }
}
