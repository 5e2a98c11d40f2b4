/* My-Chat visitor widget: the panel, the open conversation. The loader
 * (widget.js) fetches it and hands over the launcher, the shadow root, the
 * config, the words and the calls waiting for it. User content is always
 * inserted as text (textContent / Text nodes), never as HTML; links in it
 * are built as elements, http(s) and mailto only. */
(() => {
  'use strict';
  const W = window.MyChat && window.MyChat[Symbol.for('mychat.widget')];
  if (!W || W.panel) return;
  W.panel = true;
  const { KEY, BASE, STORE, api, emit, h, icon } = W;
  const API = BASE + '/api/v1/widget';

  let lang = W.lang;
  let t = W.t;
  const fill = (s, v) => s.replace('{}', v);
  // What the visitor reads of a refusal: words of their language by the
  // error's code, never the server's English message.
  const ERRS = { invalid_email: 'badMail', validation_failed: 'check', rate_limited: 'slow', too_large: 'large', unsupported_media_type: 'type', unprocessable: 'bad', identity_required: 'signIn' };
  const said = (err) => t[ERRS[err.code]] || t.oops;

  /* ---------- look ---------- */

  const CSS = `
.panel{position:fixed;bottom:88px;right:20px;width:370px;height:560px;max-width:calc(100vw - 40px);
 max-height:calc(100vh - 108px);display:flex;flex-direction:column;overflow:hidden;background:var(--bg);
 color:var(--fg);border-radius:14px;box-shadow:var(--shadow)}
.left .panel{right:auto;left:20px}
header :focus-visible{outline-color:var(--ink);outline-offset:-4px}
header{display:flex;align-items:center;gap:6px;padding:12px 10px 12px 16px;background:var(--accent);color:var(--ink)}
.team{display:flex;gap:2px;flex:none}
.face{display:flex;flex-direction:column;align-items:center;width:44px}
.face small{font-size:10px;max-width:44px;overflow:hidden;text-overflow:ellipsis;white-space:nowrap;opacity:.9}
.av{position:relative;display:inline-flex;align-items:center;justify-content:center;width:30px;height:30px;border-radius:50%;
 background:rgba(127,127,127,.35);font:600 12px/1 system-ui,sans-serif;flex:none;overflow:hidden}
.av::before{content:attr(data-i)}
.av img{position:absolute;inset:0;width:100%;height:100%;object-fit:cover}
.live .av{box-shadow:0 0 0 2px #22c55e}
.who .av{width:22px;height:22px;font-size:10px;background:var(--in);color:var(--fg)}
.head{flex:1;min-width:0}
h2{margin:0;font-size:16px;font-weight:600;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.status{margin:0;font-size:12px;display:flex;align-items:center;gap:6px;opacity:.92}
.desc{margin:0;font-size:12px;opacity:.85}
.dot{width:8px;height:8px;border-radius:50%;background:#9ca3af}
.on .dot{background:#22c55e}
header button{background:none;border:0;color:inherit;padding:6px 8px;border-radius:6px;font-size:12px}
header button:hover{background:rgba(127,127,127,.25)}
header svg{width:18px;height:18px}
.log{flex:1;overflow-y:auto;padding:14px;display:flex;flex-direction:column;gap:6px}
.msg{max-width:82%;display:flex;flex-direction:column;align-items:flex-start;align-self:flex-start}
.out{align-self:flex-end;align-items:flex-end}
.sys{align-self:center;max-width:100%;color:var(--muted);font-size:12px;text-align:center}
.sys button{border:1px solid var(--line,#ccc);background:none;color:inherit;border-radius:6px;padding:4px 8px;margin-top:4px}
.who{font-size:11px;color:var(--muted);margin:4px 4px 1px;display:flex;align-items:center;gap:6px}
.bubble{padding:8px 12px;border-radius:14px;background:var(--in);white-space:pre-wrap;overflow-wrap:anywhere}
.out .bubble{background:var(--accent);color:var(--ink)}
.bubble a{color:inherit;text-decoration:underline}
.meta{font-size:11px;color:var(--muted);margin:1px 4px 0;display:flex;gap:4px}
.failed .meta{color:#dc2626}
.typing{padding:0 16px 4px;font-size:12px;font-style:italic;color:var(--muted)}
.notice{padding:6px 16px;font-size:12px;background:#fef3c7;color:#92400e}
form{display:flex;gap:8px;padding:10px;border-top:1px solid var(--line);align-items:flex-end}
.card{flex-direction:column;align-items:stretch}
.card p{margin:0;font-size:13px}
label{display:flex;flex-direction:column;gap:2px;font-size:12px;color:var(--muted)}
textarea,input{font:inherit;font-size:14px;color:var(--fg);background:var(--bg);border:1px solid var(--line);
 border-radius:10px;padding:8px 10px;width:100%;margin:0;resize:none}
.compose textarea{flex:1;height:40px;max-height:140px}
.card textarea{height:90px}
.primary{border:0;border-radius:10px;padding:0 14px;height:40px;background:var(--accent);color:var(--ink);font-weight:600}
.compose .primary{width:44px;padding:0;display:flex;align-items:center;justify-content:center}
.compose svg{width:20px;height:20px}
.err{color:#dc2626;font-size:12px;margin:0}
.compose{flex-wrap:wrap}
.tray,.compose .err,.emo{flex-basis:100%}
.emo{display:grid;grid-template-columns:repeat(8,1fr);gap:2px;max-height:150px;overflow-y:auto}
.emo button{border:0;background:none;font-size:20px;line-height:1;padding:5px 0;border-radius:6px}
.emo button:hover,.emo button:focus{background:var(--in)}
.tray:empty,.compose .err:empty{display:none}
.att,.emb{border:0;background:none;color:var(--muted);width:28px;height:40px;padding:0;display:flex;align-items:center;justify-content:center}
.files,.tray{display:flex;flex-wrap:wrap;gap:4px}
.files{margin-top:4px}
.out .files{justify-content:flex-end}
.file{display:flex;flex-wrap:wrap;align-items:center;gap:2px 6px;max-width:100%;padding:4px 8px;border:1px solid var(--line);
 border-radius:10px;background:var(--bg);color:var(--fg);font-size:12px;text-align:left}
.file span{flex:1;min-width:0;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.file small{color:var(--muted)}
.file progress{width:56px;height:6px}
.file button{border:0;background:none;color:inherit;padding:0 4px}
.bad small{flex-basis:100%;order:1;color:#dc2626}
.gone{font-style:italic;color:var(--muted)}
.thumb{border:0;padding:0;background:var(--in);border-radius:10px;overflow:hidden}
.thumb img{display:block;min-width:48px;min-height:48px;max-width:180px;max-height:180px}
.drop{outline:3px dashed var(--accent);outline-offset:-6px}
.stars{display:flex;gap:4px}
.stars button{flex:1;height:36px;border:1px solid var(--line);border-radius:8px;background:var(--bg);color:var(--muted);font-size:18px}
.stars [aria-pressed=true]{background:var(--accent);color:var(--ink)}
.rate textarea{height:56px}
.ed{font-style:italic}
.box{position:absolute;inset:0;z-index:2;display:flex;align-items:center;justify-content:center;border:0;padding:12px;background:rgba(0,0,0,.85)}
.box img{max-width:100%;max-height:100%}
.past{font-size:12px;color:var(--muted)}
.past summary{cursor:pointer;padding:2px 0}
.pastone{margin:4px 0 4px 8px}
.plog{display:flex;flex-direction:column;gap:6px;padding:6px 0 10px;font-size:14px;color:var(--fg)}
.peek{position:fixed;bottom:88px;right:20px;max-width:260px;padding:10px 14px;border:0;border-radius:14px;background:var(--bg);
 color:var(--fg);box-shadow:var(--shadow);text-align:left;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.left .peek{right:auto;left:20px}
@media (max-width:480px){
 .panel{top:0;left:0;right:0;bottom:0;width:auto;height:auto;max-width:none;max-height:none;border-radius:0}}`;

  /* ---------- memory: survives reloads ---------- */

  const load = () => {
    try {
      return JSON.parse(localStorage.getItem(STORE)) || {};
    } catch (e) {
      return {};
    }
  };
  // token, queue [{id, content, at}], contact, seen (last agent message the
  // visitor saw), agentRead (last message an agent read), open
  const st = Object.assign({ queue: [] }, load());
  const save = () => {
    try {
      localStorage.setItem(STORE, JSON.stringify(st));
    } catch (e) {
      /* storage may be off; the chat still works for this page */
    }
  };

  /* ---------- the calls the panel answers ---------- */

  const oops = (err) => emit('error', { code: err.code || 'failed', message: err.message });
  function takeOver() {
    Object.assign(api, {
      open: () => setOpen(true),
      close: () => setOpen(false),
      toggle: () => setOpen(!isOpen),
      isOpen: () => isOpen,
      identify: (who) => (who && who.token ? verify(who.token) : identify(who || {})).catch(oops),
      setAttributes: (attributes) => session().then(() => call('PATCH', '/visitor', { attributes })).catch(oops),
      reset,
      prefill: (text) => {
        ui.input.value = String(text == null ? '' : text);
        grow();
      },
    });
    // Another language: the same conversation and draft, in its words.
    W.speak = () => {
      lang = W.lang;
      t = W.t;
      build(ui);
      refresh();
    };
  }

  /* ---------- DOM ---------- */

  const CROSS = 'M6.4 5 12 10.6 17.6 5 19 6.4 13.4 12l5.6 5.6-1.4 1.4-5.6-5.6L6.4 19 5 17.6l5.6-5.6L5 6.4z';
  const ARROW = 'M3 20.5 21 12 3 3.5V10l12 2-12 2z';
  const CLIP = 'M16.5 6v11.5a4 4 0 0 1-8 0V5a2.5 2.5 0 0 1 5 0v10.5a1 1 0 0 1-2 0V6H10v9.5a2.5 2.5 0 0 0 5 0V5a4 4 0 0 0-8 0v12.5a5.5 5.5 0 0 0 11 0V6z';

  let ui = null;
  const shadow = W.shadow;

  function field(label, props) {
    const input = h(props.rows ? 'textarea' : 'input', props);
    return [h('label', null, label, input), input];
  }

  function build(old) {
    if (!old) W.style(shadow, CSS);
    const [nameLabel, nameIn] = field(t.name, { name: 'name', autocomplete: 'name', maxlength: 100 });
    const [emailLabel, emailIn] = field(t.email, { name: 'email', type: 'email', autocomplete: 'email', required: true, maxlength: 254 });
    const [oNameLabel, oName] = field(t.name, { name: 'name', autocomplete: 'name', maxlength: 100 });
    const [oEmailLabel, oEmail] = field(t.email, { name: 'email', type: 'email', autocomplete: 'email', required: true, maxlength: 254 });
    const [oTextLabel, oText] = field(t.message, { name: 'content', rows: 4, required: true, maxlength: 5000 });
    const [rTextLabel, rText] = field(t.comment, { name: 'comment', rows: 2, maxlength: 1000 });
    const r = (ui = {
      launcher: W.launcher,
      badge: W.badge,
      root: W.root,
      peek: h('button', { type: 'button', class: 'peek', hidden: true, onclick: () => setOpen(true) }),
      title: h('h2', { id: 'mychat-title' }),
      desc: h('p', { class: 'desc', hidden: true }),
      status: h('span'),
      end: h('button', { type: 'button', class: 'end', hidden: true, onclick: endChat, onblur: unsure }, t.end),
      log: h('div', { class: 'log', role: 'log', 'aria-live': 'polite', 'aria-label': t.messages, tabindex: '0' }),
      typing: h('div', { class: 'typing', hidden: true }),
      past: h('details', { class: 'past', hidden: true }),
      notice: h('div', { class: 'notice', role: 'status', hidden: true }, t.reconnecting),
      input: h('textarea', { 'aria-label': t.write, placeholder: t.write, maxlength: 5000, rows: 1, oninput: onInput, onkeydown: onComposeKey, onpaste }),
      tray: h('div', { class: 'tray' }),
      ferr: h('p', { class: 'err', role: 'alert' }),
      file: h('input', { type: 'file', multiple: true, hidden: true, onchange: () => (addFiles([...ui.file.files]), (ui.file.value = '')) }),
      nameIn, emailIn, oName, oEmail, oText, rText,
      rateErr: h('p', { class: 'err', role: 'alert' }),
      stars: [1, 2, 3, 4, 5].map((n) => h('button', { type: 'button', 'aria-pressed': 'false', 'aria-label': fill(t.star, n), title: fill(t.star, n), 'data-score': n, onclick: () => pick(n) }, '★')),
      contactErr: h('p', { class: 'err', role: 'alert' }),
      offlineErr: h('p', { class: 'err', role: 'alert' }),
    });
    r.compose = h('form', { class: 'compose', onsubmit: (e) => (e.preventDefault(), sendTyped()) },
      r.tray, r.ferr, r.file, (r.emo = h('div', { class: 'emo', role: 'group', 'aria-label': t.emoji, hidden: true, onkeydown: onEmojiKey }, ...EMOJI.map((e) => h('button', { type: 'button', title: e, onclick: () => putEmoji(e) }, e)))),
      h('button', { type: 'button', class: 'att', 'aria-label': t.attach, title: t.attach, hidden: !canAttach(), onclick: () => r.file.click() }, icon(CLIP)),
      (r.emb = h('button', { type: 'button', class: 'emb', 'aria-label': t.emoji, title: t.emoji, 'aria-expanded': 'false', onclick: () => showEmoji(r.emo.hidden) }, '☺')),
      r.input, h('button', { type: 'submit', class: 'primary', 'aria-label': t.send }, icon(ARROW)));
    r.contactText = h('p', null, t.contact);
    r.notNow = h('button', { type: 'button', hidden: true, onclick: () => ((st.asked = threadId), save(), refresh()) }, t.later);
    r.contact = h('form', { class: 'card contact', hidden: true, onsubmit: saveContact },
      r.contactText, nameLabel, emailLabel, r.contactErr, h('button', { type: 'submit', class: 'primary' }, t.save), r.notNow);
    r.offline = h('form', { class: 'card offline', hidden: true, onsubmit: sendOffline },
      h('p', null, t.offline), oNameLabel, oEmailLabel, oTextLabel, r.offlineErr, h('button', { type: 'submit', class: 'primary' }, t.leave));
    r.rate = h('form', { class: 'card rate', hidden: true, onsubmit: sendRating },
      h('p', null, t.rate), h('div', { class: 'stars', role: 'group', 'aria-label': t.rate }, ...r.stars), rTextLabel, r.rateErr,
      (r.rsend = h('button', { type: 'submit', class: 'primary', disabled: true }, t.rsend)));
    r.panel = h('div', { class: 'panel', id: 'mychat-panel', role: 'dialog', 'aria-modal': 'true', 'aria-labelledby': 'mychat-title', hidden: true, onkeydown: onPanelKey, ondragover: onDrag, ondragleave: onDrag, ondrop: onDrag },
      h('header', null,
        team(),
        h('div', { class: 'head' }, r.title, r.desc, h('p', { class: 'status' }, h('span', { class: 'dot' }), r.status)),
        r.end,
        h('button', { type: 'button', class: 'x', 'aria-label': t.close, onclick: () => setOpen(false) }, icon(CROSS))),
      r.notice, r.log, r.typing, r.rate, r.contact, r.offline, r.compose);
    // Keys typed into the chat are not the host page's shortcuts.
    for (const type of ['keydown', 'keyup', 'keypress']) r.panel.addEventListener(type, (e) => e.stopPropagation());
    if (old) old.peek.remove(), old.panel.remove();
    r.root.lang = lang;
    r.launcher.before(r.peek);
    r.root.append(r.panel);
    appearance();
    r.past.dataset.k = '';
    r.log.prepend(r.past);
    const welcome = own('welcomeMessage');
    if (welcome) {
      const w = h('div', { class: 'msg in welcome' }, rich(h('div', { class: 'bubble' }), welcome));
      place(w, '');
    }
    if (old) {
      // Another language: the same conversation and draft, in its words.
      r.log.append(...[...old.log.children].filter((el) => !el.matches('.welcome,.past')));
      pastFor = null;
      r.tray.append(...old.tray.children);
      r.input.value = old.input.value;
      r.panel.hidden = !isOpen;
      records.forEach((rec) => rec.state && setState(rec, rec.state));
      pick(score);
    } else {
      // Uploads do not survive a reload: their messages cannot be sent.
      if (st.queue.some((q) => q.wait)) {
        st.queue = st.queue.filter((q) => !q.wait);
        save();
        r.ferr.textContent = t.lost;
      }
      st.queue.forEach(showPending);
    }
  }

  // The space's title or welcome in the visitor's language, else its default.
  const own = (k) => ((cfg.translations || {})[lang] || {})[k] || cfg[k];

  // An agent's picture, or initials, in a circle (the name is beside it).
  function face(name, id) {
    const a = (cfg.agents || []).find((x) => x.id === id && x.avatar);
    // Drawn from an attribute by CSS, so the line's text is the name alone.
    const el = h('span', { class: 'av', 'aria-hidden': 'true', 'data-i': name.split(/\s+/).map((w) => [...w][0] || '').slice(0, 2).join('').toUpperCase() });
    if (a) el.append(h('img', { alt: '', src: API + '/avatars/' + a.id + '?v=' + a.avatar, onerror: (e) => e.target.remove() }));
    return el;
  }

  // Up to three of the team, as the space chose them, with their names.
  function team() {
    const list = cfg.agents || [];
    if (!list.length) return null;
    const names = list.map((a) => a.name).join(', ');
    return h('div', { class: 'team', role: 'img', 'aria-label': names, title: names }, ...list.map((a) => h('span', { class: 'face' + (a.online ? ' live' : '') }, face(a.name, a.id), h('small', null, a.name))));
  }

  function appearance() {
    ui.title.textContent = own('title');
    ui.desc.textContent = cfg.description || '';
    ui.desc.hidden = !cfg.description;
  }

  /* ---------- the conversation on screen ---------- */

  const records = new Map(); // message id or clientMsgId -> {el, m, state}
  let lastId = ''; // newest message id from the server: where resume and polling start
  let threadId = null;
  let threadClosed = false;
  let endedNoted = null;
  let historyLoaded = false;

  // Keeps server order: an element with key k goes after the last keyed
  // element whose key is not greater. Unkeyed (unsent) ones stay last.
  function place(el, key) {
    el.dataset.k = key;
    let at = ui.log.lastElementChild;
    while (at && (at.dataset.k == null || at.dataset.k > key)) at = at.previousElementSibling;
    if (at) at.after(el);
    else ui.log.prepend(el);
  }

  const nearBottom = () => ui.log.scrollHeight - ui.log.scrollTop - ui.log.clientHeight < 80;
  const toBottom = () => {
    ui.log.scrollTop = ui.log.scrollHeight;
  };

  function clock(when) {
    const d = new Date(when);
    try {
      return d.toLocaleTimeString(lang, { hour: '2-digit', minute: '2-digit' });
    } catch (e) {
      return d.toTimeString().slice(0, 5);
    }
  }

  function bubble(kind, text, when, who, from) {
    const meta = h('div', { class: 'meta' }, h('time', { datetime: when }, clock(when)));
    const rec = { text: h('div', { class: 'bubble' }), files: h('div', { class: 'files' }), meta };
    rec.el = h('div', { class: 'msg ' + kind }, who ? h('div', { class: 'who' }, kind === 'in' ? face(who, from) : null, who) : null, rec.text, rec.files, meta);
    say(rec, text);
    return rec;
  }

  // A message with only files has no text bubble.
  function say(rec, text) {
    rich(rec.text, text);
    rec.text.hidden = !text;
  }

  // URLs in the text become links (http, https, mailto); the rest stays
  // text. Nothing else is parsed.
  const URLS = /\b(?:https?:\/\/|mailto:)[^\s<>"]+/gi;
  function rich(el, text) {
    text = String(text || '');
    let at = 0;
    el.replaceChildren();
    for (const m of text.matchAll(URLS)) {
      const url = m[0].replace(/[.,;:!?'")\]]+$/, '');
      el.append(text.slice(at, m.index), h('a', { href: url, target: '_blank', rel: 'noopener noreferrer nofollow' }, url));
      at = m.index + url.length;
    }
    el.append(text.slice(at));
    return el;
  }

  function setState(rec, state) {
    rec.state = state;
    rec.el.dataset.state = state;
    rec.el.classList.toggle('failed', state === 'failed');
    const marks = { sending: '…', sent: '✓', read: '✓✓', failed: '!' };
    if (!rec.mark) rec.mark = rec.meta.appendChild(h('span', { class: 'state', role: 'img' }));
    rec.mark.textContent = marks[state];
    rec.mark.setAttribute('aria-label', t[state]);
    rec.mark.title = t[state];
  }

  function showPending(q) {
    const rec = bubble('out', q.content, q.at);
    rec.files.append(...(ups.get(q.id) || []).map((f) => f.el));
    rec.pending = true;
    records.set(q.id, rec);
    setState(rec, 'sending');
    ui.log.append(rec.el);
    toBottom();
  }

  // A line from the widget itself, after the newest message.
  function note(text) {
    const el = h('div', { class: 'msg sys', role: 'note' }, text);
    place(el, lastId + '~');
    toBottom();
  }

  // A message from the server: new, or the server's copy of one shown already.
  function addMessage(m) {
    if (m.internal) return;
    const own = m.senderType === 'visitor';
    const stick = own || nearBottom();
    let rec = records.get(m.id) || (m.clientMsgId && own && records.get(m.clientMsgId));
    const text = m.deletedAt ? t.deleted : m.content;
    if (rec && !rec.pending) {
      say(rec, text);
      showFiles(rec, m);
      edited(rec, m);
      return;
    }
    if (m.threadId !== threadId) {
      threadId = m.threadId;
      threadClosed = false;
    }
    if (m.id > lastId) lastId = m.id;
    if (rec) {
      // Our own message came back from the server: it now has its place.
      rec.pending = false;
      rec.el.remove();
      say(rec, text);
    } else {
      const prev = ui.log.lastElementChild;
      const kind = own ? 'out' : m.senderType === 'agent' ? 'in' : 'sys';
      const who = kind === 'in' && !(prev && prev.dataset.sender === m.senderId) ? m.senderName || t.agent : null;
      rec = bubble(kind, text, m.createdAt, who, m.senderId);
      rec.el.dataset.sender = m.senderId;
    }
    rec.m = m;
    showFiles(rec, m);
    edited(rec, m);
    rec.el.dataset.id = m.id;
    records.set(m.id, rec);
    if (m.clientMsgId && own) records.set(m.clientMsgId, rec);
    place(rec.el, m.id);
    if (own) {
      // Stored, whichever way it came back: no need to send it again.
      if (m.clientMsgId && st.queue.some((q) => q.id === m.clientMsgId)) unqueue(m.clientMsgId);
      setState(rec, st.agentRead && m.id <= st.agentRead ? 'read' : 'sent');
      // The server takes no message before the email when the space says so.
      if (cfg.requireVisitorData === 'beforeFirstMessage') st.contact = st.contact || 'given';
    } else if (m.senderType === 'agent') {
      ui.typing.hidden = true;
      // An agent who writes has read everything before.
      agentRead(m.id);
      incoming(m);
    }
    if (stick) toBottom();
    refresh();
  }

  // "edited" next to the time of a message its agent changed.
  function edited(rec, m) {
    if (m.editedAt && !m.deletedAt && !rec.ed) rec.ed = rec.meta.appendChild(h('span', { class: 'ed' }, t.edited));
  }

  function incoming(m) {
    if (st.seen && m.id <= st.seen) return;
    if (historyLoaded) {
      emit('message', { id: m.id, content: m.content, senderName: m.senderName, createdAt: m.createdAt });
      if (!isOpen || document.hidden) {
        beep();
        flashTitle();
      }
      // A glimpse of the reply next to the launcher while the panel is closed.
      ui.peek.textContent = (m.senderName ? m.senderName + ': ' : '') + (m.content || '📎');
      ui.peek.hidden = isOpen;
    }
    if (!replaying) markRead();
  }

  function unread() {
    let n = 0;
    const seen = st.seen || '';
    for (const [k, rec] of records) if (k === (rec.m && rec.m.id) && rec.m.senderType === 'agent' && k > seen) n++;
    return n;
  }

  function agentRead(upTo) {
    if (!upTo || (st.agentRead && upTo <= st.agentRead)) return;
    st.agentRead = upTo;
    save();
    for (const [k, rec] of records) {
      if (rec.m && k === rec.m.id && rec.m.senderType === 'visitor' && k <= upTo) setState(rec, 'read');
    }
  }

  function setThread(th) {
    if (!th) return;
    threadId = th.id || th.threadId;
    threadClosed = th.status === 'closed' || th.status === 'expired';
    if (historyLoaded) noteEnded();
    refresh();
  }

  function noteEnded() {
    if (!threadClosed || endedNoted === threadId) return;
    endedNoted = threadId;
    note(t.ended);
    const ended = threadId;
    // What comes next: the transcript (with email), a new conversation (the
    // next message starts one), the rating card below when the space asks.
    const b = cfg.email && h('button', { type: 'button', class: 'transcript', onclick: () => ((wantTranscript = ended), st.contact ? mailTranscript() : refresh()) }, t.transcript);
    place(h('div', { class: 'msg sys' }, b, ' ', h('button', { type: 'button', class: 'again', onclick: () => ui.input.focus() }, t.again)), lastId + '~~');
  }

  let wantTranscript = null;
  async function mailTranscript() {
    if (!wantTranscript) return;
    wantTranscript = null;
    refresh();
    try {
      await call('POST', '/transcript', {});
      note(t.mailed);
    } catch (e) {
      note(said(e));
    }
  }

  /* ---------- earlier conversations: a list to open and read ---------- */

  let pastFor; // the current thread when the list was made
  async function pastList() {
    if (!token || pastFor === threadId) return;
    pastFor = threadId;
    let old;
    try {
      old = (await call('GET', '/threads')).items.filter((th) => th.id !== threadId);
    } catch (e) {
      pastFor = undefined;
      return;
    }
    ui.past.hidden = !old.length;
    ui.past.replaceChildren(h('summary', null, fill(t.earlier, old.length)), ...old.map(pastOne));
  }

  function pastOne(th) {
    const log = h('div', { class: 'plog' });
    let day = th.createdAt;
    try {
      day = new Date(day).toLocaleDateString(lang);
    } catch (e) {
      /* the server's date as it is */
    }
    const d = h('details', { class: 'pastone', ontoggle: () => d.open && !log.firstChild && pastRead(th.id, log) }, h('summary', null, day + ' · ' + (th.preview || '…')), log);
    return d;
  }

  // An earlier conversation, read-only, with its files.
  async function pastRead(id, log, cursor) {
    try {
      const p = await call('GET', '/messages?limit=200&threadId=' + id + (cursor ? '&cursor=' + cursor : ''));
      for (const m of p.items) {
        if (m.internal) continue;
        const kind = m.senderType === 'visitor' ? 'out' : m.senderType === 'agent' ? 'in' : 'sys';
        const rec = bubble(kind, m.deletedAt ? t.deleted : m.content, m.createdAt, kind === 'in' ? m.senderName || t.agent : null, m.senderId);
        showFiles(rec, m);
        edited(rec, m);
        log.append(rec.el);
      }
      if (p.nextCursor) pastRead(id, log, p.nextCursor);
    } catch (e) {
      log.replaceChildren(h('p', { class: 'err' }, said(e)));
    }
  }

  /* ---------- what the panel shows ---------- */

  let cfg = null;
  let isOpen = false;
  let offlineSent = false;

  const talking = () => !!threadId && !threadClosed;
  const reachable = () => cfg.open && cfg.agentsOnline;

  let unreadWas = 0;
  function refresh() {
    if (!ui) return;
    if (isOpen && historyLoaded) pastList();
    const on = reachable();
    ui.root.classList.toggle('on', on);
    ui.status.textContent = on ? t.online + (cfg.replyMinutes ? ' · ' + fill(t.within, cfg.replyMinutes) : '') : t.away;
    const offline = cfg.offlineMessages && !on && !offlineSent && !(talking() && records.size);
    const need = cfg.requireVisitorData;
    const wrote = [...records.values()].some((r) => !r.m || r.m.senderType === 'visitor');
    const askFirst = need === 'beforeFirstMessage' && !st.contact;
    const askAfter = need === 'afterFirstMessage' && !st.contact && wrote;
    // Nobody to answer now: once per conversation, offer the reply by email.
    const askMail = cfg.email && !on && talking() && wrote && !st.contact && st.asked !== threadId;
    const wanted = askFirst || askAfter || contactDemanded || wantTranscript;
    ui.offline.hidden = !offline;
    ui.contact.hidden = offline || !(wanted || askMail);
    ui.contactText.textContent = wanted ? t.contact : t.mailAsk;
    ui.notNow.hidden = wanted;
    ui.compose.hidden = offline || askFirst || contactDemanded;
    ui.end.hidden = !talking();
    ui.rate.hidden = !(cfg.csat && threadId && threadClosed && historyLoaded && st.rated !== threadId);
    ui.notice.hidden = !token || connected() || !lostOnce;
    let n = unread();
    if (n !== unreadWas) emit('unread', (unreadWas = n));
    // The loader shows the count on the next page until the history is here.
    if (!historyLoaded) n = st.unread || 0;
    else if (n !== (st.unread || 0)) (st.unread = n), save();
    ui.badge.hidden = isOpen || !n;
    ui.badge.textContent = n > 9 ? '9+' : String(n);
    ui.launcher.setAttribute('aria-label', isOpen ? t.close : n ? t.open + ', ' + fill(t.unread, n) : t.open);
  }

  function setOpen(open, focus = true) {
    if (open === isOpen) return;
    const hadFocus = ui.panel.contains(shadow.activeElement);
    isOpen = open;
    st.open = open;
    save();
    ui.panel.hidden = !open;
    ui.peek.hidden = true;
    ui.root.classList.toggle('opened', open);
    ui.launcher.setAttribute('aria-expanded', String(open));
    if (open) {
      if (focus) wakeAudio();
      go();
      stopFlash();
      markRead();
      toBottom();
      if (focus) focusFirst();
    } else if (hadFocus) {
      ui.launcher.focus();
    }
    refresh();
    emit(open ? 'open' : 'close');
  }

  function focusables() {
    return [...ui.panel.querySelectorAll('button,textarea,input,[tabindex]')].filter(
      (el) => !el.disabled && el.getClientRects().length,
    );
  }

  function focusFirst() {
    const f = focusables();
    const first = f.find((el) => el.matches('textarea,input'));
    (first || f[0] || ui.panel).focus();
  }

  // Esc closes; Tab and Shift+Tab stay inside the open panel.
  function onPanelKey(e) {
    if (e.key === 'Escape') {
      e.preventDefault();
      const box = ui.panel.querySelector('.box');
      if (box) box.remove();
      else if (!ui.emo.hidden) showEmoji(false), ui.emb.focus();
      else setOpen(false);
      return;
    }
    if (e.key !== 'Tab') return;
    const f = focusables();
    const first = f[0];
    const last = f[f.length - 1];
    const now = shadow.activeElement;
    if (e.shiftKey && (now === first || !f.includes(now))) {
      e.preventDefault();
      last.focus();
    } else if (!e.shiftKey && (now === last || !f.includes(now))) {
      e.preventDefault();
      first.focus();
    }
  }

  /* ---------- attention: sound and title ---------- */

  let audio = null;
  // Browsers let a page make sound only after a gesture: the first opening.
  function wakeAudio() {
    try {
      audio = audio || new (window.AudioContext || window.webkitAudioContext)();
      if (audio.state === 'suspended') audio.resume();
      return true;
    } catch (e) {
      return false;
    }
  }
  function beep() {
    if (!wakeAudio()) return;
    try {
      const now = audio.currentTime;
      const osc = audio.createOscillator();
      const gain = audio.createGain();
      osc.frequency.value = 880;
      gain.gain.setValueAtTime(0.08, now);
      gain.gain.exponentialRampToValueAtTime(0.0001, now + 0.35);
      osc.connect(gain).connect(audio.destination);
      osc.start(now);
      osc.stop(now + 0.35);
    } catch (e) {
      /* no sound: the badge and the title still say it */
    }
  }

  let flashTimer = 0;
  let hostTitle = '';
  function flashTitle() {
    if (flashTimer) return;
    hostTitle = document.title;
    let on = false;
    const step = () => {
      on = !on;
      document.title = on ? '(' + unread() + ') ' + t.fresh : hostTitle;
    };
    step();
    flashTimer = setInterval(step, 1000);
  }
  function stopFlash() {
    if (!flashTimer) return;
    clearInterval(flashTimer);
    flashTimer = 0;
    document.title = hostTitle;
  }

  /* ---------- talking to the server ---------- */

  let token = st.token || null;
  let halted = false;

  async function call(method, path, body, anonymous) {
    const headers = {};
    if (body) headers['content-type'] = 'application/json';
    if (token && !anonymous) headers.authorization = 'Bearer ' + token;
    const res = await fetch(API + path, { method, headers, body: body && JSON.stringify(body), credentials: 'omit' });
    const data = res.status === 204 ? null : await res.json().catch(() => null);
    if (!res.ok) {
      const err = new Error();
      err.status = res.status;
      err.code = data && data.error && data.error.code;
      err.message = said(err);
      throw err;
    }
    return data;
  }

  let sessionCall = null;
  function session() {
    if (!sessionCall) {
      const body = {
        key: KEY,
        sessionToken: token || undefined,
        locale: (navigator.language || '').slice(0, 35) || undefined,
        url: location.href.slice(0, 2000),
        referrer: document.referrer.slice(0, 2000) || undefined,
      };
      sessionCall = call('POST', '/session', body, true).then(
        (s) => {
          if (token && !s.resumed) forget();
          token = st.token = s.sessionToken;
          save();
        },
        (err) => {
          sessionCall = null;
          throw err;
        },
      );
    }
    return sessionCall;
  }

  // The server no longer knows this visitor: start over, keeping unsent text.
  function forget() {
    for (const [k, rec] of records) {
      if (!rec.pending) {
        rec.el.remove();
        records.delete(k);
      }
    }
    ui.log.querySelectorAll('.sys').forEach((el) => el.remove());
    ui.past.hidden = true;
    pastFor = null;
    lastId = '';
    threadId = null;
    threadClosed = false;
    st.seen = st.agentRead = st.contact = undefined;
  }

  // Another session (identify with a token, reset): its own history.
  function switchTo(tok) {
    forget();
    historyLoaded = false;
    token = st.token = tok;
    sessionCall = tok && Promise.resolve();
    save();
    const s = ws;
    ws = null;
    wsUp = false;
    if (s) s.close();
    clearTimeout(retryTimer);
    setPolling(false);
    if (tok) go();
    refresh();
  }

  // Logout on a shared computer: nothing of this visitor stays, and the
  // next message starts a new one.
  function reset() {
    for (const k in st) delete st[k];
    st.queue = [];
    records.forEach((rec) => rec.el.remove());
    records.clear();
    tray.forEach((f) => f.el.remove());
    tray = [];
    ui.input.value = '';
    offlineSent = contactDemanded = false;
    stopFlash();
    switchTo(null);
  }

  function renew() {
    forget();
    token = st.token = null;
    sessionCall = null;
    save();
    go();
  }

  // Errors of calls that need a session: 401 means the token is gone;
  // 403/404 mean this site or key may no longer use the chat.
  function failed(err) {
    if (err.status === 401) renew();
    else if (err.status === 403 || err.status === 404) halt();
  }

  function halt() {
    halted = true;
    clearTimeout(retryTimer);
    clearTimeout(pollTimer);
    if (ws) ws.close();
  }

  /* the socket, with jittered backoff; polling when sockets are refused */

  let ws = null;
  let wsUp = false;
  let wsFails = 0; // sockets in a row that never opened
  let attempts = 0;
  let retryTimer = 0;
  let polling = false;
  let pollOk = false;
  let pollTimer = 0;
  let lostOnce = false;
  let heard = 0;
  let replaying = false;

  const connected = () => wsUp || (polling && pollOk);

  function go() {
    if (halted) return;
    clearTimeout(retryTimer);
    session().then(connect, (err) => {
      if (err.status === 403 || err.status === 404) halt();
      else retry();
    });
  }

  function retry() {
    clearTimeout(retryTimer);
    const cap = polling ? 60000 : 15000;
    const delay = Math.min(cap, 400 * 2 ** Math.min(attempts++, 8)) * (0.5 + Math.random() / 2);
    retryTimer = setTimeout(go, delay);
  }

  function connect() {
    if (ws || halted || !token) return;
    const url = BASE.replace(/^http/, 'ws') + '/ws/widget?key=' + encodeURIComponent(KEY) + '&token=' + encodeURIComponent(token);
    let sock;
    try {
      sock = new WebSocket(url);
    } catch (e) {
      return closed(false);
    }
    ws = sock;
    let opened = false;
    sock.onopen = () => {
      opened = true;
    };
    sock.onmessage = (e) => {
      heard = Date.now();
      let f;
      try {
        f = JSON.parse(e.data);
      } catch (err) {
        return;
      }
      onFrame(f);
    };
    sock.onclose = () => {
      if (ws !== sock) return;
      ws = null;
      closed(opened);
    };
  }

  function closed(opened) {
    wsUp = false;
    lostOnce = true;
    wsFails = opened ? 0 : wsFails + 1;
    refresh();
    if (halted) return;
    // A plain request tells a refused socket from a server that is away,
    // and fetches what was missed meanwhile.
    poll().then(
      () => {
        if (wsFails >= 2) setPolling(true);
      },
      (err) => {
        // The server itself is away: those failures say nothing about sockets.
        if (!err.status) wsFails = 0;
        failed(err);
      },
    );
    retry();
  }

  const wsSend = (frame) => {
    if (wsUp && ws && ws.readyState === 1) ws.send(JSON.stringify(frame));
    return wsUp;
  };

  // Keep-alive: a socket that heard nothing for long is dead; replace it.
  setInterval(() => {
    if (!wsUp) return;
    if (Date.now() - heard > 70000) ws.close();
    else wsSend({ type: 'ping' });
  }, 30000);

  function onFrame(f) {
    switch (f.type) {
      case 'hello':
        wsUp = true;
        onSocket = new Set();
        attempts = 0;
        wsFails = 0;
        setPolling(false);
        cfg.open = f.open;
        cfg.agentsOnline = f.agentsOnline;
        if (f.thread) setThread(f.thread);
        replaying = true;
        ui.log.setAttribute('aria-busy', 'true');
        wsSend({ type: 'resume', after: lastId || null });
        page();
        break;
      case 'resumed':
        replaying = false;
        ui.log.setAttribute('aria-busy', 'false');
        historyLoaded = true;
        noteEnded();
        markRead();
        flush();
        break;
      case 'resync':
        poll().catch(failed);
        break;
      case 'message:ack':
        acked(f.clientMsgId, f.message);
        break;
      case 'agent:message':
      case 'visitor:message':
        addMessage(f.message);
        break;
      case 'message:updated':
        if (records.has(f.message.id)) addMessage(f.message);
        break;
      case 'agent:typing':
        showTyping(f.isTyping, f.agentName);
        break;
      case 'messages:read':
        agentRead(f.upTo);
        break;
      case 'agents:status':
        cfg.agentsOnline = f.online;
        break;
      case 'thread:updated':
        setThread(f);
        break;
      case 'error':
        if (f.clientMsgId) refused(f.clientMsgId, f.code);
        break;
    }
    refresh();
  }

  let pageWas = '';
  function page() {
    pageWas = location.href;
    wsSend({ type: 'visitor:page', url: pageWas.slice(0, 2000), title: (flashTimer ? hostTitle : document.title).slice(0, 300) });
  }

  // Single-page apps change the address without loading a page.
  function trackPages() {
    const moved = () => setTimeout(() => location.href !== pageWas && page());
    for (const k of ['pushState', 'replaceState']) {
      const was = history[k];
      history[k] = function () {
        const r = was.apply(this, arguments);
        moved();
        return r;
      };
    }
    addEventListener('popstate', moved);
    addEventListener('hashchange', moved);
  }

  function setPolling(on) {
    polling = on;
    clearTimeout(pollTimer);
    if (on) pollTimer = setTimeout(pollLoop, 3000);
  }

  function pollLoop() {
    if (!polling) return;
    poll()
      .then(flush, failed)
      .finally(() => {
        if (polling) pollTimer = setTimeout(pollLoop, isOpen ? 3000 : 10000);
      });
  }

  let pollCall = null;
  function poll() {
    if (!pollCall) {
      pollCall = pollPages().then(
        () => {
          pollOk = true;
          pollCall = null;
          historyLoaded = true;
          noteEnded();
          markRead();
          refresh();
        },
        (err) => {
          pollOk = false;
          pollCall = null;
          refresh();
          throw err;
        },
      );
    }
    return pollCall;
  }

  async function pollPages() {
    for (;;) {
      const from = lastId;
      const page = await call('GET', '/messages?limit=200' + (from ? '&after=' + from : ''));
      page.items.forEach((m) => addMessage(m));
      setThread(page.thread);
      if (!from || !page.nextCursor) return;
    }
  }

  /* ---------- sending: queued until the server has it ---------- */

  const newId = () => {
    if (crypto.randomUUID) return crypto.randomUUID();
    return 'w-' + Array.from(crypto.getRandomValues(new Uint32Array(4)), (n) => n.toString(36)).join('-');
  };

  // A queued message: {id, content, at}, plus att (uploaded ids) or, while
  // its files are still uploading, wait. Its uploads live in `ups`.
  function sendTyped() {
    const content = ui.input.value.trim();
    const files = tray.filter((f) => !f.fatal);
    if (!content && !files.length) return;
    ui.input.value = '';
    grow();
    stopTyping();
    tray.forEach((f) => f.el.remove());
    tray = [];
    ui.ferr.textContent = '';
    const q = { id: newId(), content, at: new Date().toISOString() };
    if (files.length) {
      files.forEach((f) => (f.q = q));
      ups.set(q.id, files);
      q.wait = 1;
    }
    st.queue.push(q);
    save();
    showPending(q);
    refresh();
    // Goes now, or when its files are uploaded.
    if (q.wait) settle(q);
    else kick();
  }

  function kick() {
    if (wsUp || (polling && pollOk)) flush();
    else {
      // Try at once rather than wait out the backoff.
      attempts = 0;
      go();
    }
  }

  let posting = false;
  let flushTimer = 0;
  let onSocket = new Set(); // ids sent over the current socket
  // Sends what is queued, in order, up to a message still waiting for its
  // files: over the socket in one go (the server keeps the order), else one
  // by one over HTTP. clientMsgId makes resends safe.
  function flush() {
    clearTimeout(flushTimer);
    if (!st.queue.length || contactDemanded) return;
    if (wsUp) {
      for (const q of st.queue) {
        if (q.wait) break;
        if (!onSocket.has(q.id) && wsSend({ type: 'visitor:send_message', clientMsgId: q.id, content: q.content, attachmentIds: q.att })) onSocket.add(q.id);
      }
      return;
    }
    if (!polling || posting) return;
    posting = true;
    (async () => {
      try {
        while (st.queue.length && !contactDemanded && !st.queue[0].wait) {
          const q = st.queue[0];
          try {
            const r = await call('POST', '/messages', { content: q.content, clientMsgId: q.id, attachmentIds: q.att });
            acked(q.id, r.message);
          } catch (err) {
            if (!refused(q.id, err.code, err.status)) throw err;
          }
        }
      } catch (err) {
        failed(err);
      } finally {
        posting = false;
      }
    })();
  }

  function unqueue(id) {
    st.queue = st.queue.filter((q) => q.id !== id);
    ups.delete(id);
    save();
  }

  function acked(id, m) {
    unqueue(id);
    addMessage(m);
    emit('sent', { id: m.id, content: m.content });
  }

  // The server said no. Returns false when it is worth retrying later.
  function refused(id, code, status) {
    if (code === 'unprocessable') {
      // This space needs the visitor's email first; the message waits.
      contactDemanded = true;
      refresh();
      return true;
    }
    if (!code || status >= 500 || ['rate_limited', 'unavailable', 'internal', 'unauthorized'].includes(code)) {
      onSocket.delete(id);
      clearTimeout(flushTimer);
      flushTimer = setTimeout(flush, 5000);
      return false;
    }
    unqueue(id);
    const rec = records.get(id);
    if (rec) {
      rec.pending = false;
      setState(rec, 'failed');
    }
    // Only visitors the site signed in may write here: say so.
    if (code === 'identity_required') note(t.signIn);
    return true;
  }

  /* ---------- files ---------- */

  let tray = []; // uploads for the message being written
  const ups = new Map(); // queued message id -> its uploads
  const canAttach = () => !!(cfg.attachments && cfg.attachments.allowed);
  const size = (n) => (n < 1024 ? n + ' B' : n < 1048576 ? Math.round(n / 1024) + ' KB' : (n / 1048576).toFixed(1) + ' MB');

  // Files are checked here first, so the visitor learns at once.
  function addFiles(list) {
    const { maxCount, maxSizeBytes } = cfg.attachments;
    ui.ferr.textContent = '';
    for (const file of list) {
      if (tray.filter((f) => !f.fatal).length >= maxCount) {
        ui.ferr.textContent = fill(t.many, maxCount);
        break;
      }
      if (file.size > maxSizeBytes) {
        ui.ferr.textContent = file.name + ': ' + fill(t.big, size(maxSizeBytes));
        continue;
      }
      const f = { file };
      const button = (label, text, onclick) => h('button', { type: 'button', 'aria-label': label, title: label, onclick }, text);
      f.el = h('div', { class: 'file up' },
        h('span', null, file.name),
        (f.info = h('small', { 'aria-live': 'polite' })),
        (f.bar = h('progress', { max: 1, 'aria-label': file.name })),
        (f.retry = button(t.retry, '↻', () => upload(f))),
        (f.x = button(t.remove, '×', () => unfile(f))));
      tray.push(f);
      ui.tray.append(f.el);
      upload(f);
    }
  }

  // XMLHttpRequest, not fetch: only it reports upload progress.
  function upload(f) {
    f.err = f.fatal = '';
    f.bar.value = 0;
    draw(f);
    session().then(() => {
      const x = (f.xhr = new XMLHttpRequest());
      x.open('POST', API + '/attachments');
      x.setRequestHeader('authorization', 'Bearer ' + token);
      x.upload.onprogress = (e) => (f.bar.value = e.loaded / (e.total || 1));
      x.onload = () => {
        let d = null;
        try {
          d = JSON.parse(x.responseText);
        } catch (e) {
          /* not JSON: a proxy's error page */
        }
        if (x.status !== 201) return fail(f, x.status, d && d.error && d.error.message);
        f.id = d.id;
        draw(f);
        if (f.q) settle(f.q);
      };
      x.onerror = () => fail(f, 0);
      const form = new FormData();
      form.append('file', f.file, f.file.name);
      x.send(form);
    }, () => fail(f, 0));
  }

  function fail(f, status, why) {
    if (status === 401) renew();
    // Refused for what the file is: trying again will not help.
    f.fatal = [403, 413, 415, 422].includes(status);
    const word = { 413: fill(t.big, size(cfg.attachments.maxSizeBytes)), 415: t.type, 422: t.bad }[status] || t.upfail;
    f.err = status === 415 || status === 422 ? word + ' ' + (why || '') : word;
    draw(f);
  }

  function draw(f) {
    f.info.textContent = f.err || size(f.file.size);
    f.el.classList.toggle('bad', !!f.err);
    f.bar.hidden = !!(f.id || f.err);
    f.retry.hidden = !f.err || f.fatal;
    f.x.hidden = !!(f.q && f.id);
  }

  // The visitor takes a file back, from the composer or a waiting message.
  function unfile(f) {
    if (f.xhr) f.xhr.abort();
    f.el.remove();
    const list = f.q ? ups.get(f.q.id) : tray;
    list.splice(list.indexOf(f), 1);
    if (!f.q) return;
    if (list.length || f.q.content) return settle(f.q);
    const rec = records.get(f.q.id);
    rec.el.remove();
    records.delete(f.q.id);
    unqueue(f.q.id);
    flush();
    refresh();
  }

  // A waiting message whose uploads are all done may go.
  function settle(q) {
    const files = ups.get(q.id);
    if (!q.wait || files.some((f) => !f.id)) return;
    q.att = files.map((f) => f.id);
    delete q.wait;
    save();
    files.forEach(draw);
    kick();
  }

  function onDrag(e) {
    const ok = canAttach() && !ui.compose.hidden && [...e.dataTransfer.types].includes('Files');
    ui.panel.classList.toggle('drop', ok && e.type === 'dragover');
    if (!ok) return;
    e.preventDefault();
    if (e.type === 'drop') addFiles([...e.dataTransfer.files]);
  }

  function onpaste(e) {
    const list = [...((e.clipboardData && e.clipboardData.files) || [])];
    if (!list.length || !canAttach()) return;
    e.preventDefault();
    addFiles(list);
  }

  // Downloads need the session token, so files are fetched and shown
  // through blob: URLs.
  const blobs = new Map();
  function blob(path) {
    if (!blobs.has(path)) {
      const got = fetch(BASE + '/api/v1/attachments/' + path, { headers: { authorization: 'Bearer ' + token }, credentials: 'omit' })
        .then((r) => (r.ok ? r.blob() : Promise.reject(r.status)))
        .then((b) => URL.createObjectURL(b));
      got.catch(() => blobs.delete(path));
      blobs.set(path, got);
    }
    return blobs.get(path);
  }

  // Images open in a viewer over the panel (a click or Escape closes it);
  // other files are saved under their name.
  const openFile = (a, view) =>
    blob(a.id).then(
      (url) => {
        if (!view) return h('a', { href: url, download: a.name }).click();
        const box = h('button', { type: 'button', class: 'box', 'aria-label': t.close + ': ' + a.name, onclick: () => box.remove() }, h('img', { src: url, alt: a.name }));
        ui.panel.append(box);
        box.focus();
      },
      () => {},
    );

  function showFiles(rec, m) {
    rec.files.replaceChildren(...(m.deletedAt ? [] : m.attachments || []).map(fileView));
  }

  function fileView(a) {
    if (a.expired) return h('span', { class: 'file gone' }, h('span', null, a.name), h('small', null, t.expired));
    if (a.thumbnail) {
      const img = h('img', { alt: a.name });
      blob(a.id + '/thumbnail').then(
        (url) => {
          // A thumbnail grows the list when it loads: stay at the bottom.
          const stick = nearBottom();
          img.onload = () => stick && toBottom();
          img.src = url;
        },
        () => img.replaceWith(a.name),
      );
      return h('button', { type: 'button', class: 'thumb', title: a.name, onclick: () => openFile(a, 1) }, img);
    }
    return h('button', { type: 'button', class: 'file', onclick: () => openFile(a) }, h('span', null, a.name), h('small', null, size(a.sizeBytes)));
  }

  /* emoji: a small built-in set, a grid the arrow keys move through */

  const EMOJI = '😀 😃 😄 😁 😆 😅 😂 🙂 😉 😊 😍 😘 😎 🤔 😐 😮 😢 😭 😡 🙈 👍 👎 👌 👏 🙏 💪 👋 🤝 🙌 ❤️ 💔 🔥 ⭐ ✨ 🎉 ✅ ❌ ❓ ❗ 💡 📦 🚚 💳 📧 📞 ⏰ 🏠 🛒'.split(' ');
  function showEmoji(on) {
    ui.emo.hidden = !on;
    ui.emb.setAttribute('aria-expanded', String(on));
    if (on) ui.emo.firstChild.focus();
  }
  function putEmoji(e) {
    const i = ui.input;
    i.setRangeText(e, i.selectionStart, i.selectionEnd, 'end');
    showEmoji(false);
    i.focus();
    grow();
  }
  function onEmojiKey(e) {
    const all = [...ui.emo.children];
    const at = all.indexOf(shadow.activeElement);
    const step = { ArrowLeft: -1, ArrowRight: 1, ArrowUp: -8, ArrowDown: 8, Home: -at, End: all.length - 1 - at }[e.key];
    if (step == null || at < 0) return;
    e.preventDefault();
    all[Math.max(0, Math.min(all.length - 1, at + step))].focus();
  }

  /* typing, both ways */

  let typingSince = 0;
  let typingStop = 0;
  function grow() {
    ui.input.style.height = '';
    ui.input.style.height = Math.min(ui.input.scrollHeight + 2, 140) + 'px';
  }
  function onInput() {
    grow();
    if (!ui.input.value) return stopTyping();
    if (Date.now() - typingSince > 2000 && wsSend({ type: 'visitor:typing', isTyping: true })) typingSince = Date.now();
    clearTimeout(typingStop);
    typingStop = setTimeout(stopTyping, 3000);
  }
  function stopTyping() {
    clearTimeout(typingStop);
    if (typingSince) wsSend({ type: 'visitor:typing', isTyping: false });
    typingSince = 0;
  }
  // Enter sends, Shift+Enter is a new line (and IME composition is left alone).
  function onComposeKey(e) {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      sendTyped();
    }
  }

  let typingHide = 0;
  function showTyping(on, name) {
    clearTimeout(typingHide);
    ui.typing.textContent = fill(t.typing, name || t.agent);
    ui.typing.hidden = !on;
    if (on) typingHide = setTimeout(() => (ui.typing.hidden = true), 8000);
  }

  /* read markers */

  function markRead() {
    if (!isOpen || document.hidden) return;
    stopFlash();
    let newest = '';
    for (const [k, rec] of records) if (rec.m && k === rec.m.id && rec.m.senderType === 'agent' && k > newest) newest = k;
    if (!newest || (st.seen && newest <= st.seen)) return;
    st.seen = newest;
    save();
    if (!wsSend({ type: 'visitor:read', upTo: newest })) call('POST', '/read', { upTo: newest }).catch(() => {});
    refresh();
  }

  /* ---------- forms ---------- */

  let contactDemanded = false;

  async function identify(who) {
    const body = {};
    if (who.name != null) body.displayName = String(who.name).trim().slice(0, 100) || null;
    if (who.email != null) body.email = String(who.email).trim() || null;
    if (who.phone != null) body.phone = String(who.phone).trim() || null;
    await session();
    await call('PATCH', '/visitor', body);
    if (body.email) {
      st.contact = 'given';
      contactDemanded = false;
      save();
      refresh();
      flush();
      mailTranscript();
    }
  }

  // A token the site signed: the server links this visitor to its user and
  // may hand over that user's session.
  async function verify(idToken) {
    await session();
    const r = await call('POST', '/identify', { token: String(idToken) });
    if (typeof r.sessionToken === 'string') switchTo(r.sessionToken);
  }

  async function busy(form, errEl, work) {
    const button = form.querySelector('button[type=submit]');
    button.disabled = true;
    errEl.textContent = '';
    try {
      await work();
      return true;
    } catch (err) {
      errEl.textContent = said(err);
      return false;
    } finally {
      button.disabled = false;
    }
  }

  async function saveContact(e) {
    e.preventDefault();
    const ok = await busy(ui.contact, ui.contactErr, () => identify({ name: ui.nameIn.value, email: ui.emailIn.value }));
    if (ok) focusFirst();
  }

  async function sendOffline(e) {
    e.preventDefault();
    const ok = await busy(ui.offline, ui.offlineErr, async () => {
      await session();
      const r = await call('POST', '/offline', {
        name: ui.oName.value.trim() || undefined,
        email: ui.oEmail.value.trim(),
        content: ui.oText.value.trim(),
      });
      offlineSent = true;
      st.contact = 'given';
      save();
      ui.oText.value = '';
      if (r.thread) setThread(r.thread);
      // The message itself, so the thanks go below it.
      await poll().catch(() => {});
      note(t.thanks);
    });
    if (ok) {
      refresh();
      focusFirst();
    }
  }

  /* rating an ended chat: once, 1–5 with an optional comment */

  let score = 0;
  function pick(n) {
    score = n;
    ui.stars.forEach((b, i) => b.setAttribute('aria-pressed', String(i < n)));
    ui.rsend.disabled = !n;
  }

  async function sendRating(e) {
    e.preventDefault();
    const id = threadId;
    const ok = await busy(ui.rate, ui.rateErr, async () => {
      try {
        await call('POST', '/rating', { threadId: id, score, comment: ui.rText.value.trim() || undefined });
      } catch (err) {
        // Rated already (another tab) or not asked for: nothing to do.
        if (!['already_rated', 'ratings_disabled'].includes(err.code)) throw err;
      }
    });
    if (!ok) return;
    st.rated = id;
    save();
    ui.rText.value = '';
    pick(0);
    note(t.rthanks);
    refresh();
  }

  // "End chat" asks once more in place: the second press ends it.
  const unsure = () => ((ui.end.textContent = t.end), delete ui.end.dataset.sure);
  async function endChat() {
    if (!ui.end.dataset.sure) return (ui.end.dataset.sure = 1), (ui.end.textContent = t.sure);
    unsure();
    try {
      const r = await call('POST', '/close');
      if (r && r.thread) setThread(r.thread);
    } catch (err) {
      failed(err);
    }
    ui.input.focus();
  }

  /* ---------- start ---------- */

  cfg = W.cfg;
  build();
  trackPages();
  takeOver();
  refresh();
  // A returning visitor reconnects at once; a new one when they open the chat.
  if (token || st.queue.length) go();
  if (st.open) setOpen(true, false);
  W.waiting.splice(0).forEach(([name, args]) => api[name](...args));
  W.ready();
  document.addEventListener('visibilitychange', markRead);
  window.addEventListener('online', () => {
    attempts = 0;
    if (!ws && token) go();
  });
})();
