// The visitor panel: who is writing, from which page, with which browser,
// since when, whether the site verified them, their earlier threads;
// name, email, phone and external id editable; notes, custom attributes
// and a new conversation (contact.js).

import { get, patch } from '../api.js';
import { field, h, mount, safeLink } from '../dom.js';
import { fullTime, relativeTime, t, visitorLabel } from '../i18n.js';
import { isOpen, on, state, upsertThread } from '../store.js';
import { contactSection, newConversation } from './contact.js';
import { ratingBadge } from './rating.js';
import { privacyActions } from './visitor-privacy.js';

/** Browser and OS from a user agent string, roughly. */
export function parseUserAgent(ua) {
  if (!ua) return { browser: '', os: '' };
  const pick = (rules) => {
    for (const [re, name] of rules) {
      const m = ua.match(re);
      if (m) return m[1] ? `${name} ${m[1].replace(/_/g, '.')}` : name;
    }
    return '';
  };
  const browser = pick([
    [/Edg\/(\d+)/, 'Edge'],
    [/OPR\/(\d+)/, 'Opera'],
    [/SamsungBrowser\/(\d+)/, 'Samsung Internet'],
    [/Firefox\/(\d+)/, 'Firefox'],
    [/Chrom(?:e|ium)\/(\d+)/, 'Chrome'],
    [/Version\/(\d+)[\d.]* .*Safari/, 'Safari'],
  ]);
  const os = pick([
    [/Windows NT 10/, 'Windows 10/11'],
    [/Windows NT ([\d.]+)/, 'Windows'],
    [/(?:iPhone|iPad).* OS (\d+)/, 'iOS'],
    [/Mac OS X (\d+[_.]\d+)/, 'macOS'],
    [/Android (\d+)/, 'Android'],
    [/CrOS/, 'ChromeOS'],
    [/Linux/, 'Linux'],
  ]);
  return { browser, os };
}

/**
 * The "verified" mark of a visitor the site vouched for with an identity
 * token; with the site's user id when known.
 */
export function verifiedBadge(externalId) {
  const title = externalId ? t('visitor.verifiedAs', { id: externalId }) : t('visitor.verifiedHint');
  return h('span', { class: 'badge badge--verified', title, dataset: { verified: 'true' } }, `✓ ${t('visitor.verified')}`);
}

export class VisitorPanel {
  constructor(root, thread, { view, close }) {
    this.root = root;
    this.visitorId = thread.visitorId;
    this.threadId = thread.id;
    this.view = view;
    this.close = close;
    this.visitor = null;
    this.threads = [];
    this.presence = null;
    this.editing = false;
    this.offs = [
      on('visitor:presence', (f) => {
        if (f.visitorId !== this.visitorId) return;
        this.presence = f;
        this.refresh();
      }),
      on('resync', () => this.load()),
      // The visitor's conversations follow live changes, new ones included.
      on('thread', (th) => {
        if (th.removed || th.visitorId !== this.visitorId) return;
        const i = this.threads.findIndex((x) => x.id === th.id);
        if (i >= 0) this.threads[i] = { ...this.threads[i], ...th };
        else this.threads.unshift(th);
        this.refresh();
      }),
    ];
    mount(root, h('p', { class: 'muted pad' }, t('common.loading')));
    this.load();
  }

  destroy() {
    for (const off of this.offs) off();
  }

  async load() {
    try {
      const [visitor, threads] = await Promise.all([get(`/visitors/${this.visitorId}`), get(`/visitors/${this.visitorId}/threads`)]);
      this.visitor = visitor;
      this.threads = threads.items || [];
      if (!this.editing) this.render();
    } catch (e) {
      mount(this.root, h('p', { class: 'form-error pad' }, e.message));
    }
  }

  /** Draws again for something that happened elsewhere, keeping what the
   *  agent is typing in the panel (notes, a new attribute) and its focus. */
  refresh() {
    if (!this.visitor || this.editing) return;
    const typed = [...this.root.querySelectorAll('input[name], textarea[name]')]
      .filter((el) => el.type !== 'file')
      .map((el) => ({ name: el.name, value: el.value, focused: el === document.activeElement }));
    this.render();
    for (const { name, value, focused } of typed) {
      const el = this.root.querySelector(`[name="${CSS.escape(name)}"]`);
      if (!el) continue;
      el.value = value;
      if (focused) el.focus();
    }
  }

  render() {
    const v = this.visitor;
    if (!v) return;
    const md = v.metadata || {};
    const { browser, os } = parseUserAgent(md.userAgent);
    const online = this.presence ? this.presence.online : null;
    const page = this.presence?.url || md.currentUrl;
    const title = this.presence?.title || md.currentTitle;
    const row = (label, value, cls) => (value ? [h('dt', {}, label), h('dd', { class: cls }, value)] : null);
    const when = (ts) => (ts ? h('time', { datetime: ts, title: fullTime(ts) }, relativeTime(ts)) : null);
    mount(
      this.root,
      h(
        'div',
        { class: 'visitor' },
        h(
          'header',
          { class: 'visitor__head' },
          h('h2', { class: 'visitor__name' }, visitorLabel(v)),
          v.verified ? verifiedBadge(v.externalId) : null,
          online == null ? null : h('span', { class: ['dot', online ? 'dot--online' : 'dot--offline'], title: online ? t('visitor.onSite') : t('visitor.left') }),
          h('button', { type: 'button', class: 'btn btn--ghost btn--sm visitor__close', 'aria-label': t('common.close'), onclick: () => this.close() }, '×'),
        ),
        h(
          'dl',
          { class: 'facts' },
          row(t('visitor.name'), v.displayName),
          row(t('visitor.email'), v.email ? safeLink(`mailto:${v.email}`, v.email) : null),
          row(t('visitor.phone'), v.phone),
          row(t('visitor.externalId'), v.externalId),
          row(t('visitor.page'), page ? h('span', {}, title ? h('span', { class: 'facts__title' }, title) : null, safeLink(page, page)) : null, 'facts__url'),
          row(t('visitor.referrer'), md.referrer ? safeLink(md.referrer, md.referrer) : null, 'facts__url'),
          row(t('visitor.browser'), [browser, os].filter(Boolean).join(' · ') || md.userAgent),
          row(t('visitor.locale'), md.locale),
          row(t('visitor.firstSeen'), when(md.firstSeenAt || v.createdAt)),
          row(t('visitor.lastSeen'), when(md.lastSeenAt)),
        ),
        h('button', { type: 'button', class: 'btn btn--sm', dataset: { action: 'edit-visitor' }, onclick: () => this.edit() }, t('visitor.edit')),
        contactSection(v, (fresh) => {
          this.visitor = fresh;
          this.render();
        }),
        h('h3', { class: 'visitor__section' }, t('visitor.threads')),
        this.threads.some((th) => isOpen(th)) ? null : newConversation(v, (th) => (location.hash = `#/inbox/mine/${th.id}`)),
        h(
          'ul',
          { class: 'history' },
          this.threads.map((th) =>
            h(
              'li',
              {},
              h(
                'a',
                { href: `#/inbox/${this.view}/${th.id}`, class: ['history__item', th.id === this.threadId && 'history__item--current'] },
                h('span', { class: ['status', `status--${th.status}`] }, t(`status.${th.status}`)),
                h('time', { datetime: th.createdAt, title: fullTime(th.createdAt) }, relativeTime(th.createdAt)),
                h('span', { class: 'history__preview' }, th.lastMessage?.preview || th.subject || ''),
                ratingBadge(th.rating),
              ),
            ),
          ),
        ),
        privacyActions(this.visitorId, this.threads, () => {
          this.close();
          location.hash = `#/inbox/${this.view}`;
        }),
      ),
    );
  }

  edit() {
    const v = this.visitor;
    this.editing = true;
    const input = (name, value, type = 'text') => h('input', { class: 'input', name, type, value: value || '' });
    const error = h('p', { class: 'form-error', hidden: true });
    const form = h(
      'form',
      { class: 'stack visitor__form' },
      field(t('visitor.name'), input('displayName', v.displayName)),
      field(t('visitor.email'), input('email', v.email, 'email')),
      field(t('visitor.phone'), input('phone', v.phone, 'tel')),
      field(t('visitor.externalId'), input('externalId', v.externalId)),
      error,
      h(
        'div',
        { class: 'row-buttons' },
        h('button', { type: 'submit', class: 'btn btn--primary btn--sm' }, t('common.save')),
        h(
          'button',
          {
            type: 'button',
            class: 'btn btn--ghost btn--sm',
            onclick: () => {
              this.editing = false;
              this.render();
            },
          },
          t('common.cancel'),
        ),
      ),
    );
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const values = Object.fromEntries(new FormData(form).entries());
      const body = {};
      for (const [k, val] of Object.entries(values)) body[k] = val.trim() || null;
      try {
        this.visitor = await patch(`/visitors/${this.visitorId}`, body);
        this.editing = false;
        // Every list row of this visitor shows the new name.
        for (const th of state.threads.values()) if (th.visitorId === this.visitorId) upsertThread({ ...th, visitorName: this.visitor.label, visitorNumber: this.visitor.displayName ? undefined : this.visitor.number });
        this.render();
      } catch (err) {
        error.textContent = err.message;
        error.hidden = false;
      }
    });
    mount(this.root, h('div', { class: 'visitor' }, h('h2', { class: 'visitor__name' }, visitorLabel(v)), form));
    form.querySelector('input')?.focus();
  }
}
