/* My-Chat member embed: the platform's own users chat in the conversations
 * bound to its objects, inside its pages.
 *
 *   <script src="https://chat.example.com/embed.js"></script>
 *   MyChat.mount(element, { token, mode: 'inline', object: { type: 'order', id: '42' } })
 *   MyChat.mount(element, { token, mode: 'full' })      // lists + a conversation
 *   MyChat.onTokenExpired(async () => freshMemberToken())
 *   MyChat.unmount(element)
 *
 * Member tokens are signed by the platform's backend (a signing key).
 * Everything people wrote is inserted as text; nothing is parsed as HTML.
 * Live through /ws/member with reconnect and `resume`; REST for history.
 */
(function () {
  'use strict';
  if (window.MyChat && window.MyChat.mount) return;

  const script = document.currentScript;
  const BASE = script ? new URL(script.src).origin : location.origin;
  const API = BASE + '/api/v1';

  const WORDS = {
    en: {
      participating: 'My conversations', available: 'Available', empty: 'No conversations here.',
      join: 'Join the conversation', leave: 'Leave', back: 'Back', write: 'Write a message…', send: 'Send',
      notYours: 'You cannot see this conversation.', loading: 'Loading…', older: 'Earlier messages',
      reconnecting: 'Reconnecting…', failed: 'Not sent', retry: 'Retry', joinHint: 'You may join this conversation.',
      typing: '{} is typing…', read: 'Read', unread: '{} unread', system: 'System', you: 'You', attach: 'Attach a file', reply: 'Reply', replying: 'Replying to:', cancel: 'Cancel reply',
    },
    pl: {
      participating: 'Moje rozmowy', available: 'Dostępne', empty: 'Brak rozmów.',
      join: 'Dołącz do rozmowy', leave: 'Opuść', back: 'Wstecz', write: 'Napisz wiadomość…', send: 'Wyślij',
      notYours: 'Nie możesz zobaczyć tej rozmowy.', loading: 'Wczytywanie…', older: 'Wcześniejsze wiadomości',
      reconnecting: 'Ponowne łączenie…', failed: 'Nie wysłano', retry: 'Ponów', joinHint: 'Możesz dołączyć do tej rozmowy.',
      typing: '{} pisze…', read: 'Przeczytano', unread: 'Nieprzeczytane: {}', system: 'System', you: 'Ty', attach: 'Załącz plik', reply: 'Odpowiedz', replying: 'Odpowiedź na:', cancel: 'Anuluj odpowiedź',
    },
    ru: {
      participating: 'Мои разговоры', available: 'Доступные', empty: 'Разговоров нет.',
      join: 'Присоединиться', leave: 'Выйти', back: 'Назад', write: 'Напишите сообщение…', send: 'Отправить',
      notYours: 'Вам не виден этот разговор.', loading: 'Загрузка…', older: 'Ранние сообщения',
      reconnecting: 'Переподключение…', failed: 'Не отправлено', retry: 'Повторить', joinHint: 'Вы можете присоединиться к разговору.',
      typing: '{} печатает…', read: 'Прочитано', unread: 'Непрочитанных: {}', system: 'Система', you: 'Вы', attach: 'Прикрепить файл', reply: 'Ответить', replying: 'Ответ на:', cancel: 'Отменить ответ',
    },
  };
  const fill = (s, v) => s.replace('{}', v);

  const CSS = `
:host{all:initial;display:block;height:100%}
.root{--accent:#2563eb;--bg:#fff;--fg:#111827;--muted:#6b7280;--line:#e5e7eb;--in:#f3f4f6;--out:#dbeafe;
font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);background:var(--bg);
display:flex;flex-direction:column;height:100%;min-height:240px;border:1px solid var(--line);border-radius:8px;overflow:hidden;box-sizing:border-box}
.dark{--bg:#111827;--fg:#f9fafb;--muted:#9ca3af;--line:#374151;--in:#1f2937;--out:#1e3a8a}
@media (prefers-color-scheme:dark){.auto{--bg:#111827;--fg:#f9fafb;--muted:#9ca3af;--line:#374151;--in:#1f2937;--out:#1e3a8a}}
*{box-sizing:border-box}
button{font:inherit;cursor:pointer;color:inherit}
button:focus-visible,textarea:focus-visible,a:focus-visible{outline:2px solid var(--accent);outline-offset:2px}
.tabs{display:flex;border-bottom:1px solid var(--line)}
.tabs button{flex:1;border:0;background:none;padding:10px;border-bottom:2px solid transparent}
.tabs button[aria-selected=true]{border-bottom-color:var(--accent);font-weight:600}
.list{flex:1;overflow:auto;margin:0;padding:0;list-style:none}
.list button{display:block;width:100%;text-align:left;border:0;border-bottom:1px solid var(--line);background:none;padding:10px 12px}
.list .t{display:flex;justify-content:space-between;gap:8px;font-weight:600}
.list .p{color:var(--muted);white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.badge{background:var(--accent);color:#fff;border-radius:9px;padding:0 6px;font-size:12px;font-weight:600}
.bar{display:flex;align-items:center;gap:8px;padding:8px 10px;border-bottom:1px solid var(--line)}
.bar h2{flex:1;margin:0;font-size:15px;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.bar button,.join,.older{border:1px solid var(--line);background:none;border-radius:6px;padding:4px 10px}
.join{background:var(--accent);color:#fff;border:0;padding:8px 14px;margin:12px auto;display:block}
.log{flex:1;overflow:auto;padding:10px;display:flex;flex-direction:column;gap:6px}
.msg{max-width:85%;align-self:flex-start}
.mine{align-self:flex-end;text-align:right}
.who{font-size:11px;color:var(--muted)}
.bubble a{color:inherit;text-decoration:underline}
.quote{display:block;border-left:3px solid var(--accent);padding-left:6px;color:var(--muted);font-size:12px;margin-bottom:2px;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.rep{border:0;background:none;color:var(--muted);font-size:11px;padding:0 4px}
.replying{display:flex;gap:6px;align-items:center;padding:4px 10px;font-size:12px;color:var(--muted);border-top:1px solid var(--line)}
.replying span{flex:1;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.replying button{border:0;background:none}
.file{display:block;margin-top:4px;border:1px solid var(--line);background:none;border-radius:6px;padding:2px 8px;font-size:12px}
form .att{background:none;color:inherit;border:1px solid var(--line);padding:0 10px}
.bubble{display:inline-block;text-align:left;padding:6px 10px;border-radius:12px;background:var(--in);white-space:pre-wrap;overflow-wrap:anywhere}
.mine .bubble{background:var(--out)}
.sys{align-self:center;color:var(--muted);font-size:12px}
.state{font-size:11px;color:var(--muted)}
.note{padding:16px;color:var(--muted);text-align:center}
.typing{padding:0 12px;font-size:12px;color:var(--muted);min-height:16px}
form{display:flex;gap:6px;padding:8px;border-top:1px solid var(--line)}
textarea{flex:1;resize:none;font:inherit;color:inherit;background:var(--bg);border:1px solid var(--line);border-radius:6px;padding:6px 8px;min-height:36px;max-height:120px}
form button{border:0;background:var(--accent);color:#fff;border-radius:6px;padding:0 14px}
.notice{background:#fef3c7;color:#92400e;padding:4px 10px;font-size:12px}
[hidden]{display:none!important}
@media (max-width:480px){.msg{max-width:95%}}
`;

  function h(tag, attrs, ...kids) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v == null || v === false) continue;
      if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else if (k === 'class') el.className = v;
      else el.setAttribute(k, v === true ? '' : v);
    }
    for (const kid of kids.flat()) if (kid != null) el.append(kid.nodeType ? kid : document.createTextNode(String(kid)));
    return el;
  }

  /** Text with its http(s) and mailto URLs as safe links; nothing else
   * is parsed, and every part is a text node or a plain <a>. */
  const URLS = /\b(?:https?:\/\/|mailto:)[^\s<>"]+/gi;
  function linkify(text) {
    const str = String(text == null ? '' : text);
    const out = [];
    let at = 0;
    for (const m of str.matchAll(URLS)) {
      const url = m[0].replace(/[.,;:!?'")\]]+$/, '');
      let ok = false;
      try {
        ok = ['http:', 'https:', 'mailto:'].includes(new URL(url).protocol);
      } catch (e) {
        ok = false;
      }
      if (!ok) continue;
      out.push(str.slice(at, m.index), h('a', { href: url, target: '_blank', rel: 'noopener noreferrer nofollow' }, url));
      at = m.index + url.length;
    }
    out.push(str.slice(at));
    return out.filter((p) => p !== '');
  }

  let tokenSource = null;
  const mounted = new Map();

  class Chat {
    constructor(el, opts) {
      this.el = el;
      this.token = opts.token;
      this.mode = opts.mode === 'full' ? 'full' : 'inline';
      this.object = opts.object || null;
      this.t = WORDS[(opts.locale || navigator.language || 'en').slice(0, 2)] || WORDS.en;
      const shadow = el.shadowRoot || el.attachShadow({ mode: 'open' });
      shadow.replaceChildren(h('style', null, CSS));
      this.root = h('div', { class: 'root ' + (opts.theme === 'dark' ? 'dark' : opts.theme === 'light' ? '' : 'auto'), part: 'root' });
      shadow.append(this.root);
      this.dialogs = new Map();
      this.current = null;
      this.lastId = null;
      this.pending = new Map();
      this.shown = new Map();
      this.tab = 'participating';
      this.stopped = false;
      this.failures = 0;
      this.start();
    }

    async call(method, path, body) {
      for (let tries = 0; ; tries++) {
        const res = await fetch(API + path, {
          method,
          headers: Object.assign({ authorization: 'Bearer ' + this.token }, body ? { 'content-type': 'application/json' } : {}),
          body: body ? JSON.stringify(body) : undefined,
        });
        if (res.status === 401 && tries === 0 && (await this.renew())) continue;
        const data = res.status === 204 ? null : await res.json().catch(() => null);
        if (!res.ok) {
          const err = new Error((data && data.error && data.error.message) || res.statusText);
          err.status = res.status;
          err.code = data && data.error && data.error.code;
          throw err;
        }
        return data;
      }
    }

    /** Asks the host page for a fresh token; true when it gave one. */
    async renew() {
      if (!tokenSource) return false;
      try {
        const fresh = await tokenSource();
        if (typeof fresh !== 'string' || !fresh) return false;
        this.token = fresh;
        return true;
      } catch (e) {
        return false;
      }
    }

    async start() {
      this.root.replaceChildren(h('p', { class: 'note' }, this.t.loading));
      this.connect();
      if (this.mode === 'full') await this.showLists();
      else await this.showObject();
    }

    /* ----- views ----- */

    async showLists() {
      this.current = null;
      const list = h('ul', { class: 'list', role: 'list' });
      const tab = (name) =>
        h('button', { type: 'button', role: 'tab', 'aria-selected': String(this.tab === name), onclick: () => ((this.tab = name), this.showLists()) }, this.t[name]);
      this.root.replaceChildren(h('div', { class: 'tabs', role: 'tablist' }, tab('participating'), tab('available')), list);
      this.listEl = list;
      try {
        const page = await this.call('GET', '/dialogs?type=' + this.tab);
        for (const d of page.items) this.dialogs.set(d.id, d);
        this.renderList();
      } catch (e) {
        list.replaceChildren(h('li', { class: 'note' }, e.message));
      }
    }

    renderList() {
      if (!this.listEl || this.current) return;
      const want = this.tab === 'participating';
      const items = [...this.dialogs.values()]
        .filter((d) => d.participating === want)
        .sort((a, b) => (b.lastActivityAt || '').localeCompare(a.lastActivityAt || ''));
      if (!items.length) return this.listEl.replaceChildren(h('li', { class: 'note' }, this.t.empty));
      this.listEl.replaceChildren(
        ...items.map((d) =>
          h('li', { 'data-id': d.id },
            h('button', { type: 'button', onclick: () => this.open(d.id) },
              h('span', { class: 't' }, h('span', null, d.subject || (d.externalRef ? d.externalRef.type + ' ' + d.externalRef.id : '…')),
                d.unreadCount ? h('span', { class: 'badge', 'aria-label': fill(this.t.unread, d.unreadCount) }, String(d.unreadCount)) : null),
              h('span', { class: 'p' }, (d.lastMessage && d.lastMessage.preview) || ''))),
        ),
      );
    }

    async showObject() {
      const o = this.object || {};
      try {
        const d = await this.call('GET', `/dialogs/by-object/${encodeURIComponent(o.type)}/${encodeURIComponent(o.id)}`);
        this.dialogs.set(d.id, d);
        this.open(d.id);
      } catch (e) {
        this.root.replaceChildren(h('p', { class: 'note', role: 'status' }, e.status === 404 ? this.t.notYours : e.message));
      }
    }

    open(id) {
      const d = this.dialogs.get(id);
      if (!d) return;
      this.current = id;
      this.shown = new Map();
      this.lastId = null;
      this.readUpTo = null;
      this.readBy = null;
      this.replying = null;
      this.log = h('div', { class: 'log', role: 'log', 'aria-live': 'polite', tabindex: '0' });
      this.typingEl = h('div', { class: 'typing', 'aria-live': 'polite' });
      this.notice = h('div', { class: 'notice', role: 'status', hidden: true }, this.t.reconnecting);
      const back = this.mode === 'full' ? h('button', { type: 'button', class: 'back', onclick: () => this.showLists() }, this.t.back) : null;
      const leave = d.participating ? h('button', { type: 'button', class: 'leave', onclick: () => this.leave(id) }, this.t.leave) : null;
      const bar = h('div', { class: 'bar' }, back, h('h2', null, d.subject || ''), leave);
      if (!d.participating) {
        this.root.replaceChildren(bar, h('p', { class: 'note' }, this.t.joinHint), h('button', { type: 'button', class: 'join', onclick: () => this.join(id) }, this.t.join));
        return;
      }
      this.input = h('textarea', { 'aria-label': this.t.write, placeholder: this.t.write, maxlength: '5000', rows: '1', onkeydown: (e) => this.key(e), oninput: () => this.typing() });
      this.file = h('input', { type: 'file', hidden: true, onchange: () => this.attach() });
      const form = h('form', { onsubmit: (e) => (e.preventDefault(), this.send()) },
        this.file, h('button', { type: 'button', class: 'att', 'aria-label': this.t.attach, title: this.t.attach, onclick: () => this.file.click() }, '📎'),
        this.input, h('button', { type: 'submit' }, this.t.send));
      this.older = h('button', { type: 'button', class: 'older', hidden: true, onclick: () => this.loadOlder() }, this.t.older);
      this.replyBar = h('div', { class: 'replying', hidden: true }, h('span'), h('button', { type: 'button', 'aria-label': this.t.cancel, onclick: () => this.cancelReply() }, '✕'));
      this.root.replaceChildren(bar, this.notice, this.log, this.typingEl, this.replyBar, form);
      this.log.append(this.older);
      this.loadHistory(id);
    }

    async join(id) {
      try {
        const d = await this.call('POST', `/dialogs/${id}/join`);
        this.dialogs.set(id, Object.assign({}, this.dialogs.get(id), d, { participating: true }));
        this.open(id);
      } catch (e) {
        this.root.append(h('p', { class: 'note' }, e.message));
      }
    }

    async leave(id) {
      try {
        await this.call('POST', `/dialogs/${id}/leave`);
        const d = this.dialogs.get(id);
        if (d) d.participating = false;
        this.mode === 'full' ? this.showLists() : this.open(id);
      } catch (e) {
        this.root.append(h('p', { class: 'note' }, e.message));
      }
    }

    /* ----- messages ----- */

    async loadHistory(id) {
      try {
        const page = await this.call('GET', `/dialogs/${id}/messages?limit=50`);
        if (this.current !== id) return;
        this.cursor = page.nextCursor;
        this.older.hidden = !page.nextCursor;
        page.items.forEach((m) => this.add(m));
        this.markRead();
        this.log.scrollTop = this.log.scrollHeight;
      } catch (e) {
        this.log.append(h('p', { class: 'note' }, e.message));
      }
    }

    async loadOlder() {
      const id = this.current;
      if (!this.cursor) return;
      const page = await this.call('GET', `/dialogs/${id}/messages?limit=50&cursor=${this.cursor}`);
      if (this.current !== id) return;
      const height = this.log.scrollHeight;
      page.items.forEach((m) => this.add(m));
      this.cursor = page.nextCursor;
      this.older.hidden = !page.nextCursor;
      this.log.scrollTop = this.log.scrollHeight - height;
    }

    /** Shows a message once, in server order (ids are time-ordered). */
    add(m) {
      if (!m || m.threadId !== this.current || !this.log) return;
      if (!this.lastId || m.id > this.lastId) this.lastId = m.id;
      this.shown.set(m.id, m);
      const key = m.clientMsgId && this.pending.get(m.clientMsgId);
      if (key) {
        key.remove();
        this.pending.delete(m.clientMsgId);
      }
      let el = this.log.querySelector(`[data-id="${m.id}"]`);
      const mine = m.senderType === 'member' && m.senderId === this.me;
      const who = m.senderType === 'system' ? this.t.system : mine ? this.t.you : m.senderName || '';
      const quoted = m.replyToId && this.shown.get(m.replyToId);
      const fresh = h('div', { class: m.senderType === 'system' ? 'msg sys' : 'msg' + (mine ? ' mine' : ''), 'data-id': m.id },
        h('div', { class: 'who' }, who, m.senderType !== 'system' && !m.deletedAt ? h('button', { type: 'button', class: 'rep', onclick: () => this.replyTo(m) }, this.t.reply) : null),
        quoted ? h('span', { class: 'quote' }, quoted.content) : null,
        h('div', { class: 'bubble' }, m.deletedAt ? '—' : linkify(m.content),
          (m.deletedAt ? [] : m.attachments || []).map((a) => h('button', { type: 'button', class: 'file', 'data-file': a.id, onclick: () => this.download(a) }, '📎 ' + a.name))));
      if (el) return el.replaceWith(fresh);
      const stick = this.log.scrollHeight - this.log.scrollTop - this.log.clientHeight < 60;
      let at = this.log.lastElementChild;
      while (at && at.dataset.id && at.dataset.id > m.id) at = at.previousElementSibling;
      if (at) at.after(fresh);
      else this.log.prepend(fresh);
      if (stick) this.log.scrollTop = this.log.scrollHeight;
      this.showRead();
    }

    /** Marks the newest own message another member has read. */
    showRead() {
      if (!this.log) return;
      this.log.querySelectorAll('.seen').forEach((e) => e.remove());
      const mineRead = [...this.log.querySelectorAll('.msg.mine[data-id]')].filter((e) => this.readBy && e.dataset.id <= this.readBy);
      const last = mineRead[mineRead.length - 1];
      if (last) last.append(h('div', { class: 'state seen' }, this.t.read));
    }

    replyTo(m) {
      this.replying = m;
      this.replyBar.hidden = false;
      this.replyBar.querySelector('span').textContent = this.t.replying + ' ' + m.content;
      this.input.focus();
    }

    cancelReply() {
      this.replying = null;
      if (this.replyBar) this.replyBar.hidden = true;
    }

    /** Opens a file through the guarded download (the token is the key). */
    async download(a) {
      const res = await fetch(`${API}/attachments/${a.id}`, { headers: { authorization: 'Bearer ' + this.token } });
      if (!res.ok) return;
      const url = URL.createObjectURL(await res.blob());
      const link = h('a', { href: url, download: a.name });
      link.click();
      setTimeout(() => URL.revokeObjectURL(url), 60000);
    }

    /** Uploads the chosen file, then sends it as a message. */
    async attach() {
      const file = this.file.files[0];
      this.file.value = '';
      if (!file || !this.current) return;
      const body = new FormData();
      body.append('file', file, file.name);
      const note = h('div', { class: 'msg mine' }, h('div', { class: 'bubble' }, '📎 ' + file.name), h('div', { class: 'state' }, '…'));
      this.log.append(note);
      try {
        const res = await fetch(`${API}/dialogs/${this.current}/attachments`, { method: 'POST', headers: { authorization: 'Bearer ' + this.token }, body });
        const data = await res.json().catch(() => null);
        if (!res.ok) throw new Error((data && data.error && data.error.message) || res.statusText);
        note.remove();
        this.send({ content: this.input.value.trim(), cmid: crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + Math.random(), files: [data.id] });
        this.input.value = '';
      } catch (e) {
        note.querySelector('.state').textContent = e.message || this.t.failed;
      }
    }

    key(e) {
      if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        this.send();
      }
    }

    send(retry) {
      const content = retry ? retry.content : this.input.value.trim();
      const files = (retry && (retry.files || (retry.el && retry.el.files))) || [];
      if ((!content && !files.length) || !this.current) return;
      const cmid = retry && retry.cmid ? retry.cmid : crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + Math.random();
      if (!retry) this.input.value = '';
      const el = retry && retry.el ? retry.el : h('div', { class: 'msg mine', 'data-pending': cmid }, h('div', { class: 'bubble' }, content || '📎'), h('div', { class: 'state' }, '…'));
      el.files = files;
      if (!retry || !retry.el) this.log.append(el);
      this.log.scrollTop = this.log.scrollHeight;
      this.pending.set(cmid, el);
      const replyToId = retry ? retry.replyToId : this.replying && this.replying.id;
      if (!retry) this.cancelReply();
      const frame = { type: 'member:send_message', dialogId: this.current, clientMsgId: cmid, content, attachmentIds: files, replyToId };
      if (this.ready && this.ws.readyState === 1) return this.ws.send(JSON.stringify(frame));
      // No socket now: the same clientMsgId over REST stores it once.
      this.call('POST', `/dialogs/${this.current}/messages`, { content, clientMsgId: cmid, attachmentIds: files, replyToId })
        .then((m) => this.add(m))
        .catch(() => {
          el.querySelector('.state').replaceChildren(this.t.failed + ' ', h('button', { type: 'button', onclick: () => this.send({ content, cmid, el }) }, this.t.retry));
        });
    }

    typing() {
      const now = Date.now();
      if (this.ready && now - (this.typedAt || 0) > 2000) {
        this.typedAt = now;
        this.ws.send(JSON.stringify({ type: 'member:typing', dialogId: this.current, isTyping: true }));
      }
    }

    markRead() {
      if (!this.ready || !this.current || !this.lastId || document.hidden) return;
      if (this.readUpTo && this.readUpTo >= this.lastId) return;
      this.readUpTo = this.lastId;
      this.ws.send(JSON.stringify({ type: 'member:read', dialogId: this.current, upTo: this.lastId }));
    }

    /* ----- the socket ----- */

    connect() {
      if (this.stopped) return;
      const url = BASE.replace(/^http/, 'ws') + '/ws/member';
      const ws = new WebSocket(url, ['bearer', this.token]);
      this.ws = ws;
      this.ready = false;
      ws.onmessage = (e) => {
        let f;
        try {
          f = JSON.parse(e.data);
        } catch (err) {
          return;
        }
        this.frame(f);
      };
      ws.onclose = (e) => {
        if (ws !== this.ws || this.stopped) return;
        this.ready = false;
        if (this.notice) this.notice.hidden = false;
        const renew = e.code === 4001 || e.code === 4401;
        const again = () => setTimeout(() => this.connect(), Math.min(30000, 500 * 2 ** Math.min(this.failures++, 6)));
        if (renew) this.renew().then((ok) => (ok ? this.connect() : again()));
        else again();
      };
    }

    frame(f) {
      switch (f.type) {
        case 'ready':
          this.ready = true;
          this.failures = 0;
          this.me = f.memberId;
          this.externalId = f.member && f.member.externalId;
          // Whose messages are whose is known now.
          this.shown.forEach((m) => this.add(m));
          if (this.notice) this.notice.hidden = true;
          if (this.lastId) this.ws.send(JSON.stringify({ type: 'resume', after: this.lastId }));
          for (const [cmid, el] of this.pending) {
            const content = el.files && el.files.length && el.querySelector('.bubble').textContent === '📎' ? '' : el.querySelector('.bubble').textContent;
            this.ws.send(JSON.stringify({ type: 'member:send_message', dialogId: this.current, clientMsgId: cmid, content, attachmentIds: el.files || [] }));
          }
          this.markRead();
          break;
        case 'message:ack':
          this.add(f.message);
          break;
        case 'message:new': {
          const d = this.dialogs.get(f.dialogId);
          if (d) {
            d.lastMessage = { preview: f.message.content, id: f.message.id };
            d.lastActivityAt = f.message.createdAt;
            if (f.dialogId !== this.current) d.unreadCount = (d.unreadCount || 0) + 1;
          }
          if (f.dialogId === this.current) {
            this.add(f.message);
            this.markRead();
          }
          this.renderList();
          break;
        }
        case 'message:updated':
          if (f.dialogId === this.current) this.add(f.message);
          break;
        case 'typing':
          if (f.dialogId === this.current && this.typingEl) {
            this.typingEl.textContent = f.isTyping ? fill(this.t.typing, (f.participant && f.participant.name) || '') : '';
            clearTimeout(this.typingTimer);
            this.typingTimer = setTimeout(() => (this.typingEl.textContent = ''), 6000);
          }
          break;
        case 'messages:read':
          if (f.dialogId === this.current && f.reader !== this.externalId && (!this.readBy || f.upTo > this.readBy)) {
            this.readBy = f.upTo;
            this.showRead();
          }
          break;
        case 'dialog:new':
        case 'dialog:updated':
          if (f.dialog) {
            this.dialogs.set(f.dialog.id, Object.assign({}, this.dialogs.get(f.dialog.id), f.dialog));
            this.renderList();
          }
          break;
        case 'participant:left':
          if (f.dialogId === this.current && f.participant && f.participant.externalId === this.externalId) this.open(this.current);
          break;
        case 'error':
          if (f.clientMsgId && this.pending.has(f.clientMsgId)) {
            const el = this.pending.get(f.clientMsgId);
            const content = el.querySelector('.bubble').textContent;
            el.querySelector('.state').replaceChildren(f.message || this.t.failed, ' ',
              h('button', { type: 'button', onclick: () => this.send({ content, cmid: f.clientMsgId, el }) }, this.t.retry));
          }
          break;
        default:
          break;
      }
    }

    stop() {
      this.stopped = true;
      if (this.ws) this.ws.close();
      this.root.remove();
    }
  }

  document.addEventListener('visibilitychange', () => mounted.forEach((c) => c.markRead()));

  window.MyChat = Object.assign(window.MyChat || {}, {
    /** Mounts a chat into `element`; returns a handle with `unmount()`. */
    mount(element, opts) {
      if (!element || !opts || !opts.token) throw new Error('MyChat.mount(element, {token, mode, object})');
      if (mounted.has(element)) mounted.get(element).stop();
      const chat = new Chat(element, opts);
      mounted.set(element, chat);
      return { unmount: () => window.MyChat.unmount(element) };
    },
    unmount(element) {
      const chat = mounted.get(element);
      if (chat) chat.stop();
      mounted.delete(element);
    },
    /** `fn` returns (a promise of) a fresh member token when one expired. */
    onTokenExpired(fn) {
      tokenSource = typeof fn === 'function' ? fn : null;
    },
  });
})();
