// The inbox: the four thread lists (Available, Mine, All, Closed) with
// search and a space filter, kept live from the store, next to the open
// conversation and the visitor panel.

import { get, qs } from '../api.js';
import { h, mount } from '../dom.js';
import { fullTime, relativeTime, t, visitorLabel } from '../i18n.js';
import { VIEWS, byActivity, inView, mark, on, removeThread, spaceName, state, unreadOf, upsertThread } from '../store.js';
import { Conversation } from './conversation.js';
import { labelChips, labelFilter, priorityBadge } from './labels.js';
import { presenceList } from './presence.js';
import { VisitorPanel } from './visitor.js';

const PAGE = 50;

export class Inbox {
  constructor(root, { view, threadId }) {
    this.view = VIEWS.includes(view) ? view : 'available';
    this.threadId = null;
    this.q = '';
    this.space = '';
    this.label = '';
    this.from = '';
    this.to = '';
    this.cursor = null;
    this.matched = new Set();
    this.loadKey = '';
    this.conversation = null;
    this.visitor = null;
    this.frame = 0;
    this.build(root);
    this.offs = [
      on('thread', () => this.schedule()),
      on('presence', () => this.renderPresence()),
      on('resync', () => this.refetch()),
      on('spaces', () => this.renderSpaceFilter()),
      on('labels', () => this.labelSelect.refresh()),
    ];
    this.clock = setInterval(() => this.schedule(), 30_000);
    this.refetch();
    this.update({ view: this.view, threadId });
  }

  build(root) {
    this.tabs = h('nav', { class: 'tabs', 'aria-label': t('inbox.lists') });
    this.search = h('input', { type: 'search', name: 'q', class: 'input', placeholder: t('inbox.search'), 'aria-label': t('inbox.search') });
    this.search.addEventListener('input', () => {
      clearTimeout(this.searchTimer);
      this.searchTimer = setTimeout(() => {
        this.q = this.search.value.trim();
        this.load();
      }, 250);
    });
    this.spaceSelect = h('select', { name: 'space', class: 'input', 'aria-label': t('inbox.space') });
    this.spaceSelect.addEventListener('change', () => {
      this.space = this.spaceSelect.value;
      this.load();
    });
    this.labelSelect = labelFilter(
      () => this.label,
      (id) => {
        this.label = id;
        this.load();
      },
    );
    const day = (name, label) => {
      const input = h('input', { type: 'date', name, class: 'input input--sm', 'aria-label': label, title: label });
      input.addEventListener('change', () => {
        this[name] = input.value;
        this.load();
      });
      return input;
    };
    this.dates = h('div', { class: 'filters__dates' }, day('from', t('filter.from')), '–', day('to', t('filter.to')));
    this.list = h('ul', { class: 'thread-list', 'aria-live': 'polite' });
    this.more = h('button', { class: 'btn btn--ghost more', type: 'button', hidden: true, onclick: () => this.load({ more: true }) }, t('inbox.loadMore'));
    this.presence = h('div', { class: 'presence' });
    this.listPane = h(
      'aside',
      { class: 'pane pane--list' },
      this.tabs,
      h('div', { class: 'filters' }, this.search, this.spaceSelect, this.labelSelect.el, this.dates),
      h('div', { class: 'thread-scroll' }, this.list, this.more),
      this.presence,
    );
    this.convPane = h('section', { class: 'pane pane--conversation' });
    this.visitorPane = h('aside', { class: 'pane pane--visitor', 'aria-label': t('visitor.title') });
    this.el = h('div', { class: 'inbox' }, this.listPane, this.convPane, this.visitorPane);
    mount(root, this.el);
    this.renderSpaceFilter();
    this.renderPresence();
    document.body.dataset.screen = 'inbox';
  }

  destroy() {
    for (const off of this.offs) off();
    clearInterval(this.clock);
    cancelAnimationFrame(this.frame);
    this.conversation?.destroy();
    this.visitor?.destroy();
  }

  /** Called on every #/inbox/... route. */
  update({ view, threadId }) {
    const nextView = VIEWS.includes(view) ? view : 'available';
    if (nextView !== this.view) {
      this.view = nextView;
      this.load();
    }
    if (threadId !== this.threadId) {
      this.threadId = threadId || null;
      this.openThread();
    }
    this.el.classList.toggle('inbox--thread', !!this.threadId);
    this.render();
  }

  openThread() {
    this.conversation?.destroy();
    this.visitor?.destroy();
    this.conversation = null;
    this.visitor = null;
    this.el.classList.remove('inbox--visitor');
    if (!this.threadId) {
      mount(this.convPane, h('div', { class: 'empty' }, h('p', {}, t('inbox.pick')), h('p', { class: 'muted' }, t('inbox.shortcuts'))));
      mount(this.visitorPane);
      return;
    }
    this.conversation = new Conversation(this.convPane, this.threadId, {
      back: () => `#/inbox/${this.view}`,
      toggleVisitor: () => this.el.classList.toggle('inbox--visitor'),
      onThread: (thread) => {
        this.follow(thread);
        if (!this.visitor || this.visitor.visitorId !== thread.visitorId) {
          this.visitor?.destroy();
          this.visitor = new VisitorPanel(this.visitorPane, thread, { view: this.view, close: () => this.el.classList.remove('inbox--visitor') });
        }
      },
    });
  }

  /**
   * The open conversation left the list on screen (claimed from Available,
   * closed from Mine): show the list it is in now, with it still open.
   */
  follow(thread) {
    if (thread.id !== this.threadId || inView(this.view, thread)) return;
    const next = ['mine', 'available', 'all', 'closed'].find((v) => inView(v, thread));
    if (next) location.replace(`#/inbox/${next}/${thread.id}`);
  }

  /** Reloads the lists the tab counts come from and the one on screen. */
  refetch() {
    for (const view of ['available', 'mine']) if (view !== this.view) this.prefetch(view);
    this.load();
  }

  async prefetch(view) {
    const since = mark();
    try {
      const page = await get(`/threads${qs({ view, limit: 100 })}`);
      for (const item of page.items) upsertThread(item, { since });
    } catch {
      // Counts catch up with the next event.
    }
  }

  async load({ more = false } = {}) {
    const key = JSON.stringify([this.view, this.q, this.space, this.label, this.from, this.to]);
    if (!more) {
      this.loadKey = key;
      this.matched = new Set();
      this.hits = new Map();
      this.cursor = null;
    }
    const since = mark();
    let page;
    try {
      page = await get(`/threads${qs({ view: this.view, q: this.q, chatSpaceId: this.space, label: this.label, from: this.from, to: this.to, limit: PAGE, cursor: more ? this.cursor : '' })}`);
    } catch {
      return;
    }
    if (key !== this.loadKey) return;
    const ids = new Set();
    for (const item of page.items) {
      ids.add(item.id);
      this.matched.add(item.id);
      if (item.matched) this.hits.set(item.id, item.matched);
      upsertThread(item, { since });
    }
    this.cursor = page.nextCursor || null;
    if (!more && !this.q && !this.filtered()) this.reconcile(ids, page);
    this.render();
  }

  /**
   * Threads the store still files under this view that the server did not
   * list changed while we were not looking: fetch each one again.
   */
  reconcile(ids, page) {
    const oldest = page.items.at(-1)?.lastActivityAt || '';
    const stale = [...state.threads.values()].filter(
      (th) => inView(this.view, th) && !ids.has(th.id) && (!this.space || th.chatSpaceId === this.space) && (!page.nextCursor || (th.lastActivityAt || '') >= oldest),
    );
    for (const th of stale.slice(0, 25)) {
      const since = mark();
      get(`/threads/${th.id}`).then(
        (fresh) => upsertThread(fresh, { since }),
        (e) => {
          if (e.status === 404) removeThread(th.id);
        },
      );
    }
  }

  /** Whether the label or date filter is on. */
  filtered() {
    return !!(this.label || this.from || this.to);
  }

  /** The label and date filters, as the server applies them. */
  keeps(th) {
    const day = (th.lastActivityAt || '').slice(0, 10);
    return (!this.label || (th.labels || []).includes(this.label)) && (!this.from || day >= this.from) && (!this.to || day <= this.to);
  }

  visible() {
    const q = this.q.toLowerCase();
    return [...state.threads.values()]
      .filter((th) => inView(this.view, th))
      .filter((th) => !this.space || th.chatSpaceId === this.space)
      .filter((th) => this.keeps(th))
      .filter((th) => !q || this.matched.has(th.id) || [th.visitorName, th.subject, th.lastMessage?.preview].some((s) => s && s.toLowerCase().includes(q)))
      .sort(byActivity);
  }

  schedule() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.render();
    });
  }

  render() {
    this.renderTabs();
    const rows = this.visible();
    mount(this.list, rows.length ? rows.map((th) => this.row(th)) : h('li', { class: 'empty-row' }, this.q ? t('inbox.noMatches') : t(`inbox.empty.${this.view}`)));
    this.more.hidden = !this.cursor;
  }

  renderTabs() {
    const all = [...state.threads.values()];
    const count = (view) => all.filter((th) => inView(view, th)).length;
    const unread = (view) => all.filter((th) => inView(view, th)).reduce((n, th) => n + unreadOf(th), 0);
    mount(
      this.tabs,
      VIEWS.map((view) => {
        const n = view === 'available' || view === 'mine' ? count(view) : 0;
        const fresh = view === 'mine' && unread(view);
        return h(
          'a',
          // Switching lists keeps the open conversation open.
          { href: `#/inbox/${view}${this.threadId ? `/${this.threadId}` : ''}`, class: ['tab', view === this.view && 'tab--active'], 'aria-current': view === this.view ? 'page' : null, dataset: { view } },
          t(`inbox.view.${view}`),
          n ? h('span', { class: ['count', fresh && 'count--unread'], title: fresh ? t('inbox.unreadIn', { n: fresh }) : null }, String(n)) : null,
        );
      }),
    );
  }

  renderSpaceFilter() {
    const value = this.space;
    mount(this.spaceSelect, h('option', { value: '' }, t('inbox.allSpaces')), state.spaces.map((s) => h('option', { value: s.id, selected: s.id === value }, s.name)));
    this.spaceSelect.hidden = state.spaces.length < 2 && !value;
  }

  renderPresence() {
    mount(this.presence, presenceList());
  }

  row(th) {
    const unread = unreadOf(th);
    const holder = th.assignedAgentId ? (th.assignedAgentId === state.me?.id ? t('thread.you') : th.assignedAgentName || t('thread.someone')) : null;
    const preview = th.lastMessage ? `${th.lastMessage.senderType === 'visitor' ? '' : '↩ '}${th.lastMessage.preview}` : th.subject || '';
    const time = th.lastActivityAt;
    return h(
      'li',
      {},
      h(
        'a',
        { href: `#/inbox/${this.view}/${th.id}`, class: ['row', th.id === this.threadId && 'row--active', unread && 'row--unread'], dataset: { id: th.id } },
        h('span', { class: 'row__top' }, h('span', { class: 'row__name' }, visitorLabel(th), th.visitorVerified ? h('span', { class: 'row__verified', title: t('visitor.verifiedHint') }, ' ✓') : null), h('time', { class: 'row__time', datetime: time, title: fullTime(time) }, relativeTime(time))),
        h('span', { class: 'row__preview' }, this.q && this.hits?.get(th.id) ? searchSnippet(this.hits.get(th.id)) : preview),
        h(
          'span',
          { class: 'row__meta' },
          h('span', { class: ['status', `status--${th.status}`] }, t(`status.${th.status}`)),
          holder ? h('span', { class: 'row__holder', title: t('thread.heldBy', { name: holder }) }, holder) : null,
          state.spaces.length > 1 ? h('span', { class: 'row__space' }, spaceName(th.chatSpaceId)) : null,
          unread ? h('span', { class: 'badge', title: t('inbox.unread') }, String(unread)) : null,
          priorityBadge(th),
          labelChips(th),
        ),
      ),
    );
  }

  /** j / k: the next or previous thread of the list on screen. */
  move(delta) {
    const rows = this.visible();
    if (!rows.length) return;
    const at = rows.findIndex((th) => th.id === this.threadId);
    const next = rows[Math.max(0, Math.min(rows.length - 1, at < 0 ? 0 : at + delta))];
    location.hash = `#/inbox/${this.view}/${next.id}`;
    requestAnimationFrame(() => this.list.querySelector(`[data-id="${CSS.escape(next.id)}"]`)?.scrollIntoView({ block: 'nearest' }));
  }
}

/** What a search matched in a thread, its matching words marked (as text). */
function searchSnippet(matched) {
  return [matched.internal ? h('span', { class: 'row__note' }, `${t('inbox.note')} · `) : null, matched.parts.map((p) => (p.hit ? h('mark', { class: 'hit' }, p.text) : p.text))];
}
