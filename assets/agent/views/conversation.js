// One conversation: the header with the thread's state and actions
// (claim, release, transfer, pending, close, reopen), the history with
// older pages loaded on scroll, typing indicators, the visitor's read
// marker, edit and delete of one's own messages, and the composer.

import { ApiError, del, errorText, get, patch, post } from '../api.js';
import { h, linkify, mount, uuid } from '../dom.js';
import { clock, fullTime, relativeTime, t, visitorLabel } from '../i18n.js';
import { agentName, isAdmin, isOpen, mark, on, spaceName, state, unreadOf, upsertThread } from '../store.js';
import { attachLater } from './attach-later.js';
import { attachmentList } from './attachments.js';
import { Composer } from './composer.js';
import { ThreadTags } from './labels.js';
import { ratingBadge } from './rating.js';
import { verifiedBadge } from './visitor.js';

const PAGE = 50;
const TYPING_SHOWN_MS = 8000;

export class Conversation {
  constructor(root, threadId, { back, toggleVisitor, onThread }) {
    this.id = threadId;
    this.back = back;
    this.toggleVisitor = toggleVisitor;
    this.onThread = onThread;
    this.thread = null;
    this.messages = new Map();
    this.order = [];
    this.els = new Map();
    this.pending = new Map();
    this.older = null;
    this.loadingOlder = false;
    this.typers = new Map();
    this.dead = false;
    this.build(root);
    this.offs = [
      on('thread', (th) => th.id === this.id && !th.removed && this.threadChanged(th)),
      on('message', (m) => m.threadId === this.id && this.add([m])),
      on('message:updated', (m) => m.threadId === this.id && this.messages.has(m.id) && this.add([m])),
      on('typing', (f) => f.threadId === this.id && this.typing(f)),
      on('resync', () => this.catchUp()),
    ];
    this.onVisible = () => this.markRead();
    document.addEventListener('visibilitychange', this.onVisible);
    window.addEventListener('focus', this.onVisible);
    this.load();
  }

  build(root) {
    this.head = h('header', { class: 'conv__head' });
    this.tags = new ThreadTags((e) => this.failed(e));
    this.notice = h('div', { class: 'conv__notice', role: 'status', hidden: true });
    this.olderEl = h('div', { class: 'conv__older', hidden: true }, t('conv.loadingOlder'));
    this.list = h('div', { class: 'conv__messages', role: 'log', tabindex: '0', 'aria-label': t('conv.messages') }, this.olderEl);
    this.list.addEventListener('scroll', () => this.scrolled(), { passive: true });
    this.newPill = h('button', { type: 'button', class: 'conv__newpill', hidden: true, onclick: () => this.scrollToBottom() }, t('conv.newMessages'));
    this.typingEl = h('div', { class: 'conv__typing', 'aria-live': 'polite' });
    this.composer = new Composer({ threadId: this.id, onSend: (d) => this.send(d), describe: (m) => this.describe(m) });
    this.el = h('div', { class: 'conv', dataset: { thread: this.id } }, this.head, this.tags.el, this.notice, h('div', { class: 'conv__body' }, this.list, this.newPill), this.typingEl, this.composer.el);
    mount(root, this.el);
    // Files dropped anywhere on the conversation go to the reply box.
    this.el.addEventListener('dragover', (e) => {
      if (![...(e.dataTransfer?.types || [])].includes('Files')) return;
      e.preventDefault();
      this.el.classList.add('conv--drop');
    });
    this.el.addEventListener('dragleave', (e) => {
      if (e.target === this.el || !this.el.contains(e.relatedTarget)) this.el.classList.remove('conv--drop');
    });
    this.el.addEventListener('drop', (e) => {
      this.el.classList.remove('conv--drop');
      if (!e.dataTransfer?.files?.length) return;
      e.preventDefault();
      this.composer.addFiles(e.dataTransfer.files);
    });
  }

  destroy() {
    this.dead = true;
    for (const off of this.offs) off();
    document.removeEventListener('visibilitychange', this.onVisible);
    window.removeEventListener('focus', this.onVisible);
    for (const { timer } of this.typers.values()) clearTimeout(timer);
    clearTimeout(this.noticeTimer);
    clearTimeout(this.readTimer);
    this.composer.destroy();
  }

  async load() {
    try {
      // A claim that reaches the socket while this loads is newer than it.
      const since = mark();
      const [thread, page] = await Promise.all([get(`/threads/${this.id}`), get(`/threads/${this.id}/messages?limit=${PAGE}`)]);
      if (this.dead) return;
      this.older = page.nextCursor || null;
      upsertThread(thread, { since });
      this.add(page.items);
      this.scrollToBottom();
      this.fillUp();
      this.markRead();
    } catch (e) {
      if (this.dead) return;
      mount(this.head, h('a', { class: 'btn btn--ghost conv__back', href: this.back() }, '←'));
      this.show(e.status === 404 ? t('conv.notFound') : e.message, 'error', 0);
    }
  }

  /** After a reconnect: the thread again and every message since the last one shown. */
  async catchUp() {
    if (!this.thread) return this.load();
    try {
      const since = mark();
      upsertThread(await get(`/threads/${this.id}`), { since });
      let after = this.lastRealId();
      for (let i = 0; i < 20; i++) {
        const page = await get(`/threads/${this.id}/messages?limit=100${after ? `&after=${after}` : ''}`);
        if (this.dead) return;
        this.add(page.items);
        if (!page.nextCursor || !page.items.length) break;
        after = page.items.at(-1).id;
      }
    } catch {
      // The next event or reconnect tries again.
    }
  }

  lastRealId() {
    for (let i = this.order.length - 1; i >= 0; i--) if (!this.order[i].startsWith('pending:')) return this.order[i];
    return null;
  }

  threadChanged(thread) {
    const first = !this.thread;
    this.thread = thread;
    this.renderHead();
    this.composer.update(thread);
    this.updateSeen();
    this.onThread(thread);
    if (!first) this.markRead();
  }

  // Header and actions.

  renderHead() {
    const th = this.thread;
    const me = state.me?.id;
    const held = th.assignedAgentId;
    const mine = held === me;
    const admin = isAdmin();
    const open = isOpen(th);
    const holderName = th.assignedAgentName || agentName(held) || t('thread.someone');
    const holder = held ? (mine ? t('thread.heldByYou') : t('thread.heldBy', { name: holderName })) : open ? t('thread.unassignedLong') : '';
    const actions = [];
    // An object's conversation has members and no holder: staff only write.
    const bound = !!th.members;
    if (open && !held && !bound) actions.push(this.button(t('action.claim'), () => this.claim(), 'btn--primary', 'claim', 'c'));
    if (open && held && (mine || admin)) {
      actions.push(this.button(t('action.release'), () => this.act('release'), '', 'release'));
      actions.push(this.transferControl());
      actions.push(
        th.status === 'pending'
          ? this.button(t('action.active'), () => this.act('', { status: 'active' }), '', 'active')
          : this.button(t('action.pending'), () => this.act('', { status: 'pending' }), '', 'pending'),
      );
    }
    if (open && !bound && (mine || admin || !held)) actions.push(this.button(t('action.close'), () => this.act('close'), '', 'close', 'e'));
    if (!open && !bound) actions.push(this.button(t('action.reopen'), () => this.act('reopen'), 'btn--primary', 'reopen'));
    if (state.features?.email && !th.membership) actions.push(this.button(t('action.transcript'), () => this.transcript(), 'btn--ghost', 'transcript'));
    actions.push(this.button(t('action.info'), () => this.toggleVisitor(), 'btn--ghost conv__info', 'info'));
    mount(
      this.head,
      h('a', { class: 'btn btn--ghost conv__back', href: this.back(), 'aria-label': t('action.back') }, '←'),
      h(
        'div',
        { class: 'conv__title' },
        h('h2', { class: 'conv__name' }, visitorLabel(th), th.visitorVerified ? [' ', verifiedBadge()] : null),
        h(
          'div',
          { class: 'conv__sub' },
          h('span', { class: ['status', `status--${th.status}`] }, t(`status.${th.status}`)),
          !open && th.closedAt ? h('time', { class: 'conv__closed', datetime: th.closedAt, title: fullTime(th.closedAt) }, t('thread.closedAgo', { when: relativeTime(th.closedAt) })) : null,
          h('span', { class: ['conv__holder', mine && 'conv__holder--me'], dataset: { holder: held || '' } }, holder),
          th.subject && !th.members ? h('span', { class: 'conv__subject' }, th.subject) : null,
          th.externalRef ? h('span', { class: 'conv__ref mono' }, `${th.externalRef.type} ${th.externalRef.id}`) : null,
          th.members ? h('span', { class: 'conv__members' }, t('thread.members', { names: th.members.map((m) => m.name || m.externalId).join(', ') || '—' })) : null,
          state.spaces.length > 1 ? h('span', { class: 'conv__space' }, spaceName(th.chatSpaceId)) : null,
          ratingBadge(th.rating, { withComment: true }),
        ),
      ),
      h('div', { class: 'conv__actions' }, actions),
    );
    this.tags.update(th);
  }

  button(label, onclick, cls, action, key) {
    return h('button', { type: 'button', class: ['btn', 'btn--sm', cls], dataset: { action }, title: key ? `${label} (${key})` : null, onclick }, label);
  }

  transferControl() {
    const agents = state.agents.filter((a) => !a.disabled && !a.invitePending && a.id !== this.thread.assignedAgentId);
    if (!agents.length) return h('span', { class: 'conv__hint', dataset: { action: 'transfer' }, title: t('action.noTransferHint') }, t('action.noTransfer'));
    const select = h(
      'select',
      { class: 'input input--sm', 'aria-label': t('action.transfer'), dataset: { action: 'transfer' } },
      h('option', { value: '' }, t('action.transferTo')),
      agents.map((a) => h('option', { value: a.id }, a.displayName, a.isOnline ? ' ●' : '')),
    );
    select.addEventListener('change', async () => {
      const agentId = select.value;
      if (!agentId) return;
      try {
        upsertThread(await post(`/threads/${this.id}/transfer`, { agentId }));
        this.show(t('thread.transferred', { name: agentName(agentId) || '' }), 'ok');
      } catch (e) {
        this.failed(e);
        select.value = '';
      }
    });
    return select;
  }

  /** c */
  async claim() {
    if (!this.thread || this.thread.assignedAgentId || !isOpen(this.thread)) return;
    try {
      upsertThread(await patch(`/threads/${this.id}/claim`));
      this.show(t('thread.claimed'), 'ok');
    } catch (e) {
      this.failed(e);
    }
  }

  /** e */
  close() {
    if (this.thread && isOpen(this.thread)) this.act('close');
  }

  /** Emails the whole conversation to the visitor. */
  async transcript() {
    try {
      await post(`/threads/${this.id}/transcript`, {});
      this.show(t('thread.transcriptSent'), 'ok');
    } catch (e) {
      const text = e instanceof ApiError && e.code === 'no_email' ? t('thread.noEmail') : e.message;
      this.show(errorText({ message: text, requestId: e.requestId }, t('error.generic')), 'error');
    }
  }

  async act(action, body) {
    try {
      const path = action ? `/threads/${this.id}/${action}` : `/threads/${this.id}`;
      upsertThread(await patch(path, body));
    } catch (e) {
      this.failed(e);
    }
  }

  failed(e) {
    if (e instanceof ApiError && e.code === 'already_claimed') {
      // The winner's name comes with the refusal: show it now, before
      // thread:updated arrives.
      const holder = e.body?.error?.holder || {};
      this.show(t('thread.claimedBy', { name: holder.displayName || t('thread.someone') }), 'warn', 10_000);
      if (holder.id && this.thread) {
        upsertThread({ ...this.thread, assignedAgentId: holder.id, assignedAgentName: holder.displayName, status: this.thread.status === 'unassigned' ? 'active' : this.thread.status });
      }
      return;
    }
    this.show(e.status === 0 ? t('error.network') : errorText(e, t('error.generic')), 'error');
  }

  show(text, kind = 'ok', ms = 6000) {
    this.notice.textContent = text;
    this.notice.className = `conv__notice conv__notice--${kind}`;
    this.notice.hidden = false;
    clearTimeout(this.noticeTimer);
    if (ms) this.noticeTimer = setTimeout(() => (this.notice.hidden = true), ms);
  }

  // Messages.

  nearBottom() {
    return this.list.scrollHeight - this.list.scrollTop - this.list.clientHeight < 80;
  }

  scrollToBottom() {
    this.list.scrollTop = this.list.scrollHeight;
    this.newPill.hidden = true;
  }

  scrolled() {
    if (this.nearBottom()) this.newPill.hidden = true;
    if (this.list.scrollTop < 120 && this.older && !this.loadingOlder) this.loadOlder();
  }

  async loadOlder() {
    this.loadingOlder = true;
    this.olderEl.hidden = false;
    try {
      const page = await get(`/threads/${this.id}/messages?limit=${PAGE}&before=${this.older}`);
      if (this.dead) return;
      const height = this.list.scrollHeight;
      const top = this.list.scrollTop;
      this.older = page.nextCursor || null;
      this.add(page.items, { older: true });
      this.list.scrollTop = top + (this.list.scrollHeight - height);
    } catch {
      // Scrolling up again retries.
    } finally {
      this.loadingOlder = false;
      this.olderEl.hidden = true;
    }
    this.fillUp();
  }

  /** A short history on a tall screen cannot be scrolled: load more at once. */
  fillUp() {
    if (!this.dead && this.older && !this.loadingOlder && this.list.scrollHeight <= this.list.clientHeight + 120) this.loadOlder();
  }

  /** Adds or replaces messages, keeping server order (UUIDv7 ids sort by time). */
  add(items, { older = false } = {}) {
    const stick = this.nearBottom();
    let arrived = 0;
    let mine = false;
    for (const m of items) {
      if (m.clientMsgId && this.pending.has(m.clientMsgId) && !m.id.startsWith('pending:')) {
        this.remove(this.pending.get(m.clientMsgId));
        this.pending.delete(m.clientMsgId);
      }
      const el = this.renderMessage(m);
      if (this.messages.has(m.id)) {
        this.els.get(m.id).replaceWith(el);
      } else {
        this.insert(m.id, el);
        arrived += 1;
        if (m.senderType === 'agent' && m.senderId === state.me?.id) mine = true;
        if (m.senderType === 'visitor') this.clearTyper('visitor');
        else if (m.senderType === 'agent') this.clearTyper(m.senderId);
      }
      this.messages.set(m.id, m);
      this.els.set(m.id, el);
    }
    this.updateSeen();
    if (older || !arrived) return;
    if (stick || mine) this.scrollToBottom();
    else this.newPill.hidden = false;
    this.markRead();
  }

  insert(id, el) {
    let lo = 0;
    let hi = this.order.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.order[mid] < id) lo = mid + 1;
      else hi = mid;
    }
    const next = this.order[lo];
    this.order.splice(lo, 0, id);
    if (next) this.els.get(next).before(el);
    else this.list.append(el);
  }

  remove(id) {
    this.els.get(id)?.remove();
    this.els.delete(id);
    this.messages.delete(id);
    this.order = this.order.filter((x) => x !== id);
  }

  author(m) {
    if (m.senderType === 'visitor') return this.thread ? visitorLabel(this.thread) : m.senderName || t('visitor.anonymous');
    if (m.senderType === 'agent') return m.senderId === state.me?.id ? t('conv.you') : m.senderName || agentName(m.senderId) || t('thread.someone');
    return m.senderName || t('conv.system');
  }

  describe(m) {
    const text = m.deletedAt ? t('conv.deleted') : m.content || (m.attachments || []).map((a) => a.name).join(', ');
    return `${this.author(m)}: ${text.length > 120 ? `${text.slice(0, 120)}…` : text}`;
  }

  /** A line of the conversation's history: who claimed, transferred, closed… */
  renderHistory(m) {
    const e = m.event;
    const line = t(`history.${e.kind}`, { by: e.by?.name || t('thread.someone'), to: e.to?.name || t('thread.someone') });
    return h('div', { class: 'msg msg--history', role: 'note', dataset: { id: m.id, event: e.kind } }, line, ' · ', h('time', { datetime: m.createdAt, title: fullTime(m.createdAt) }, clock(m.createdAt)));
  }

  renderMessage(m) {
    if (m.event) return this.renderHistory(m);
    const pending = m.id.startsWith('pending:');
    const mine = m.senderType === 'agent' && m.senderId === state.me?.id;
    const kind = m.internal ? 'note' : m.senderType;
    const actions = [];
    if (!pending && !m.deletedAt) {
      actions.push(this.button(t('conv.replyTo'), () => this.composer.setReplyTo(m), 'btn--ghost', 'reply'));
      if (mine) {
        actions.push(this.button(t('conv.edit'), () => this.edit(m), 'btn--ghost', 'edit'));
        actions.push(this.button(t('conv.delete'), () => this.remove_(m), 'btn--ghost', 'delete'));
        actions.push(attachLater(m, (fresh) => this.add([fresh]), (e) => this.failed(e)));
      }
    }
    if (m.failed) actions.push(this.button(t('conv.retry'), () => this.retry(m), 'btn--ghost', 'retry'));
    const quoted = m.replyToId ? this.messages.get(m.replyToId) : null;
    return h(
      'article',
      { class: ['msg', `msg--${kind}`, mine && 'msg--mine', m.deletedAt && 'msg--deleted', pending && 'msg--pending', m.failed && 'msg--failed'], dataset: { id: m.id } },
      h(
        'header',
        { class: 'msg__meta' },
        h('span', { class: 'msg__author' }, this.author(m)),
        m.internal ? h('span', { class: 'msg__tag' }, t('conv.privateNote')) : null,
        h('time', { datetime: m.createdAt, title: fullTime(m.createdAt) }, clock(m.createdAt)),
        m.editedAt && !m.deletedAt ? h('span', { class: 'msg__edited', title: fullTime(m.editedAt) }, t('conv.edited')) : null,
        pending ? h('span', { class: 'msg__state' }, m.failed ? t('conv.failed') : t('conv.sending')) : null,
      ),
      m.replyToId
        ? h('button', { type: 'button', class: 'msg__quote', onclick: () => this.els.get(m.replyToId)?.scrollIntoView({ block: 'center' }) }, quoted ? this.describe(quoted) : t('conv.earlierMessage'))
        : null,
      m.deletedAt || m.content ? h('div', { class: 'msg__body' }, m.deletedAt ? t('conv.deleted') : linkify(m.content)) : null,
      m.deletedAt ? null : attachmentList(m.attachments),
      actions.length ? h('div', { class: 'msg__actions' }, actions) : null,
    );
  }

  /** "Seen" under the last message the visitor has read. */
  updateSeen() {
    for (const el of this.list.querySelectorAll('.msg__seen')) el.remove();
    const read = this.thread?.visitorRead;
    if (!read?.upTo) return;
    for (let i = this.order.length - 1; i >= 0; i--) {
      const m = this.messages.get(this.order[i]);
      if (!m || m.id.startsWith('pending:') || m.id > read.upTo || m.senderType === 'visitor' || m.internal) continue;
      this.els.get(m.id).append(h('div', { class: 'msg__seen', title: read.at ? fullTime(read.at) : null }, read.at ? t('conv.seenAt', { time: relativeTime(read.at) }) : t('conv.seen')));
      return;
    }
  }

  markRead() {
    clearTimeout(this.readTimer);
    this.readTimer = setTimeout(() => {
      const th = this.thread;
      const last = this.lastRealId();
      if (this.dead || !th || !last || document.visibilityState !== 'visible' || unreadOf(th) === 0) return;
      post(`/threads/${this.id}/read`, { upTo: last }).then(upsertThread, () => {});
    }, 300);
  }

  async send({ content, internal, replyToId, attachments }) {
    const clientMsgId = uuid();
    const draft = {
      id: `pending:${clientMsgId}`,
      threadId: this.id,
      senderType: 'agent',
      senderId: state.me?.id,
      senderName: state.me?.displayName,
      content,
      internal,
      replyToId,
      attachments,
      clientMsgId,
      createdAt: new Date().toISOString(),
    };
    this.pending.set(clientMsgId, draft.id);
    this.add([draft]);
    this.deliver(draft);
  }

  async deliver(draft) {
    try {
      const message = await post(`/threads/${this.id}/messages`, {
        content: draft.content,
        clientMsgId: draft.clientMsgId,
        internal: draft.internal,
        replyToId: draft.replyToId,
        attachmentIds: (draft.attachments || []).map((a) => a.id),
      });
      if (!this.dead) this.add([message]);
    } catch (e) {
      if (this.dead) return;
      if (e.status === 0) {
        this.add([{ ...draft, failed: true }]);
      } else {
        // Refused for good (closed, held by someone else): give the text back.
        this.remove(draft.id);
        this.pending.delete(draft.clientMsgId);
        this.composer.restore(draft.content);
      }
      this.failed(e);
    }
  }

  retry(draft) {
    this.add([{ ...draft, failed: false }]);
    this.deliver({ ...draft, failed: false });
  }

  edit(m) {
    const el = this.els.get(m.id);
    const body = el?.querySelector('.msg__body');
    if (!body) return;
    const area = h('textarea', { class: 'input msg__editor', rows: 3, maxlength: 5000, 'aria-label': t('conv.edit') }, m.content);
    const save = async () => {
      const content = area.value.trim();
      if (!content || content === m.content) return this.add([m]);
      try {
        this.add([await patch(`/messages/${m.id}`, { content })]);
      } catch (e) {
        this.failed(e);
      }
    };
    area.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && !e.shiftKey) {
        e.preventDefault();
        save();
      } else if (e.key === 'Escape') {
        e.preventDefault();
        this.add([m]);
      }
    });
    body.replaceWith(
      h(
        'div',
        { class: 'msg__edit' },
        area,
        h('div', { class: 'msg__actions' }, this.button(t('conv.save'), save, 'btn--primary', 'save'), this.button(t('conv.cancel'), () => this.add([m]), 'btn--ghost', 'cancel')),
      ),
    );
    area.focus();
  }

  async remove_(m) {
    if (!window.confirm(t('conv.confirmDelete'))) return;
    try {
      this.add([await del(`/messages/${m.id}`)]);
    } catch (e) {
      this.failed(e);
    }
  }

  // Typing.

  typing(frame) {
    if (frame.type === 'agent:typing' && frame.agentId === state.me?.id) return;
    const key = frame.type === 'visitor:typing' ? 'visitor' : frame.agentId;
    if (!frame.isTyping) return this.clearTyper(key);
    const who = key === 'visitor' ? visitorLabel(this.thread) : frame.agentName || agentName(frame.agentId) || t('thread.someone');
    clearTimeout(this.typers.get(key)?.timer);
    this.typers.set(key, { who, timer: setTimeout(() => this.clearTyper(key), TYPING_SHOWN_MS) });
    this.renderTyping();
  }

  clearTyper(key) {
    const entry = this.typers.get(key);
    if (!entry) return;
    clearTimeout(entry.timer);
    this.typers.delete(key);
    this.renderTyping();
  }

  renderTyping() {
    const names = [...this.typers.values()].map((x) => x.who);
    this.typingEl.textContent = names.length ? t('conv.typing', { names: names.join(', ') }) : '';
    this.typingEl.dataset.typing = names.length ? 'true' : 'false';
  }

  /** / */
  templates() {
    this.composer.focus(true);
  }
}
