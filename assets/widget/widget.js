/* My-Chat visitor widget: the loader. Embedded with
 *   <script src="https://HOST/widget.js" data-widget-key="KEY" async></script>
 * Every page of the site pays for this file, so it holds only the launcher
 * with its unread badge and window.MyChat, whose calls wait until they can
 * run. The panel (panel.js: the conversation) and the words of the
 * visitor's language come when the chat is opened, or when the browser is
 * idle for a visitor who has a conversation; their URLs carry their
 * content's hash, so browsers keep them for a year. Everything drawn lives
 * in one open Shadow DOM; the only global is window.MyChat. */
(() => {
  'use strict';
  const me = document.currentScript;
  const KEY = me && me.getAttribute('data-widget-key');
  // A page may call MyChat('open') before this script is here, through the
  // stub in the README: its calls wait in MyChat.q.
  const stub = window.MyChat;
  if (!KEY || (stub && stub.open)) return;
  const BASE = me.src.replace(/\/widget\.js([?#].*)?$/, '');
  const STORE = 'mychat:' + KEY;
  const LANGS = '{{LANGS}}'.split(' ');

  let st = {};
  try {
    st = JSON.parse(localStorage.getItem(STORE)) || {};
  } catch (e) {
    /* storage may be off: a new visitor */
  }

  const CSS = `
.root{--accent:#2563eb;--ink:#fff;--bg:#fff;--fg:#111827;--muted:#6b7280;--line:#e5e7eb;--in:#f3f4f6;
 --shadow:0 10px 30px rgba(0,0,0,.2);font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
 color:var(--fg);text-align:left;direction:ltr}
.dark{--bg:#111827;--fg:#f9fafb;--muted:#9ca3af;--line:#374151;--in:#1f2937}
@media (prefers-color-scheme:dark){.auto{--bg:#111827;--fg:#f9fafb;--muted:#9ca3af;--line:#374151;--in:#1f2937}}
*{box-sizing:border-box}
[hidden]{display:none!important}
button{font:inherit;cursor:pointer}
:focus-visible{outline:2px solid var(--fg);outline-offset:2px}
header :focus-visible,.launcher:focus-visible{outline-color:var(--ink);outline-offset:-4px}
.launcher{position:fixed;bottom:20px;right:20px;width:56px;height:56px;border:0;border-radius:50%;padding:0;
 background:var(--accent);color:var(--ink);box-shadow:var(--shadow);display:flex;align-items:center;justify-content:center}
.launcher svg{width:28px;height:28px}
svg{fill:currentColor;display:block}
.badge{position:absolute;top:-4px;right:-4px;min-width:20px;height:20px;padding:0 6px;border-radius:10px;
 background:#dc2626;color:#fff;font:700 12px/20px system-ui,sans-serif;text-align:center}
.left .launcher{right:auto;left:20px}
@media (max-width:480px){.opened .launcher{display:none}}`;

  /* ---------- DOM helpers, shared with the panel ---------- */

  // Children that are strings become Text nodes: never parsed as HTML.
  const h = (tag, props, ...kids) => {
    const el = document.createElement(tag);
    for (const k in props || {}) {
      const v = props[k];
      if (v == null || v === false) continue;
      if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? '' : v);
    }
    el.append(...kids.filter((c) => c != null));
    return el;
  };
  const icon = (d) => {
    const SVG = 'http://www.w3.org/2000/svg';
    const svg = document.createElementNS(SVG, 'svg');
    svg.setAttribute('viewBox', '0 0 24 24');
    svg.setAttribute('aria-hidden', 'true');
    const path = document.createElementNS(SVG, 'path');
    path.setAttribute('d', d);
    svg.append(path);
    return svg;
  };
  // A style sheet for the shadow root, added to what it has.
  const style = (root, css) => {
    try {
      const sheet = new CSSStyleSheet();
      sheet.replaceSync(css);
      root.adoptedStyleSheets = [...root.adoptedStyleSheets, sheet];
    } catch (e) {
      root.append(h('style', null, css));
    }
  };

  /* ---------- public API ----------
   * MyChat.open(), close(), toggle(), isOpen(), show() and hide() (the
   * launcher), setLocale(lang), identify({name, email, phone} or {token}),
   * setAttributes({...}), reset(), prefill(text), on(event, fn) and
   * off(event, fn) for 'ready', 'open', 'close', 'message' (an agent's
   * reply: {id, content, senderName, createdAt}), 'unread' (a count),
   * 'sent' and 'error' ({code, message}). MyChat('open') is the same call.
   * Calls that need the panel wait for it, and fetch it. */

  const listeners = {};
  const emit = (event, data) =>
    (listeners[event] || []).slice().forEach((fn) => {
      try {
        fn(data);
      } catch (e) {
        setTimeout(() => {
          throw e;
        });
      }
    });
  const api = (name, ...args) => (typeof api[name] === 'function' ? api[name](...args) : undefined);
  // What the panel takes over when it comes.
  const W = {
    KEY, BASE, STORE, LANGS, api, listeners, emit, h, icon, style,
    waiting: [], // [method, args] for the panel
    chosen: '', // the language setLocale asked for
    lang: 'en',
    // Relabels what is on screen after a change of language.
    speak: () => label(),
  };
  const later = (name) => (...args) => {
    W.waiting.push([name, args]);
    want();
  };
  Object.assign(api, {
    open: later('open'),
    close: (...args) => W.waiting.length && later('close')(...args),
    toggle: later('toggle'),
    isOpen: () => false,
    show: () => hide(false),
    hide: () => hide(true),
    setLocale: (l) => setLocale(l),
    identify: later('identify'),
    setAttributes: later('setAttributes'),
    reset: later('reset'),
    prefill: later('prefill'),
    on: (event, fn) => {
      (listeners[event] = listeners[event] || []).push(fn);
      return api;
    },
    off: (event, fn) => {
      listeners[event] = (listeners[event] || []).filter((f) => f !== fn);
      return api;
    },
  });
  Object.defineProperty(api, Symbol.for('mychat.widget'), { value: W });
  // The member embed (/embed.js) may share the global: keep its calls.
  for (const k in stub || {}) if (k !== 'q' && !(k in api)) api[k] = stub[k];
  try {
    Object.defineProperty(window, 'MyChat', { value: api, configurable: true });
  } catch (e) {
    window.MyChat = api;
  }

  let hidden = false;
  function hide(on) {
    hidden = on;
    if (W.launcher) W.launcher.hidden = on;
  }

  /* ---------- words ---------- */

  const got = {};
  // One language's words, fetched once.
  W.words = (l) => {
    if (!got[l]) {
      got[l] = fetch(BASE + '{{WORDS}}'.replace('{}', l), { credentials: 'omit' }).then((r) => (r.ok ? r.json() : Promise.reject(r)));
      got[l].catch(() => delete got[l]);
    }
    return got[l];
  };
  const norm = (l) => String(l || '').slice(0, 2).toLowerCase();

  async function setLocale(l) {
    l = norm(l);
    if (!LANGS.includes(l) || l === W.chosen) return;
    W.chosen = l;
    if (!W.t) return; // the start picks it
    const words = await W.words(l);
    if (W.chosen !== l) return;
    W.lang = l;
    W.t = words;
    W.speak();
  }

  /* ---------- the launcher ---------- */

  function label() {
    const n = st.unread;
    W.root.lang = W.lang;
    W.launcher.setAttribute('aria-label', n ? W.t.open + ', ' + W.t.unread.replace('{}', n) : W.t.open);
    W.badge.hidden = !n;
    W.badge.textContent = n > 9 ? '9+' : String(n);
  }

  function build(cfg) {
    const host = (W.host = document.createElement('mychat-widget'));
    // Inline !important beats any host rule, and resets what would inherit.
    host.style.cssText =
      'all:initial!important;position:fixed!important;bottom:0!important;right:0!important;' +
      'width:0!important;height:0!important;z-index:2147483000!important;display:block!important';
    W.shadow = host.attachShadow({ mode: 'open' });
    style(W.shadow, CSS);
    W.badge = h('span', { class: 'badge', 'aria-hidden': 'true', hidden: true });
    W.launcher = h('button', { type: 'button', class: 'launcher', 'aria-expanded': 'false', 'aria-controls': 'mychat-panel', hidden, onclick: () => api.toggle(), onpointerenter: want, onfocus: want },
      icon('M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H8l-4 4V6a2 2 0 0 1 2-2z'), W.badge);
    const root = (W.root = h('div', { class: 'root' }, W.launcher));
    const color = /^#[0-9a-f]{6}$/i.test(cfg.accentColor) ? cfg.accentColor : '#2563eb';
    const n = parseInt(color.slice(1), 16);
    const light = ((n >> 16) * 299 + ((n >> 8) & 255) * 587 + (n & 255) * 114) / 1000 > 160;
    root.style.setProperty('--accent', color);
    root.style.setProperty('--ink', light ? '#111827' : '#fff');
    root.classList.add(['light', 'dark'].includes(cfg.theme) ? cfg.theme : 'auto');
    root.classList.toggle('left', cfg.position === 'bottomLeft');
    label();
    W.shadow.append(root);
    (document.body || document.documentElement).append(host);
  }

  /* ---------- the panel: fetched once, when wanted ---------- */

  let wanted = false;
  let fetching = false;
  function want() {
    wanted = true;
    if (!W.t || fetching) return;
    fetching = true;
    const s = h('script', { src: BASE + '{{PANEL}}', async: true, crossorigin: 'anonymous' });
    s.onerror = () => {
      // Try again at the next call.
      fetching = wanted = false;
      s.remove();
    };
    document.head.append(s);
  }

  let readySent = false;
  W.ready = () => readySent || ((readySent = true), emit('ready'));

  /* ---------- start ---------- */

  let tries = 0;
  async function boot() {
    let cfg;
    try {
      const res = await fetch(BASE + '/api/v1/widget/config?key=' + encodeURIComponent(KEY), { credentials: 'omit' });
      // An unknown key or a site that may not use this chat: no widget at all.
      if (!res.ok) return;
      cfg = await res.json();
      const asked = [W.chosen, cfg.locale, ...(navigator.languages || [navigator.language])];
      W.lang = asked.map(norm).find((l) => LANGS.includes(l)) || 'en';
      W.t = await W.words(W.lang);
    } catch (e) {
      // The chat server is away: try again later, ever more rarely.
      setTimeout(boot, Math.min(300000, 5000 * 2 ** tries++) * (0.5 + Math.random() / 2));
      return;
    }
    W.cfg = cfg;
    if (document.readyState === 'loading') await new Promise((ok) => document.addEventListener('DOMContentLoaded', ok));
    build(cfg);
    // Open on the last page, or a message still to send: the panel now. A
    // visitor with a conversation: when the browser has nothing else to do.
    if (wanted || st.open || (st.queue && st.queue.length)) return want();
    W.ready();
    if (st.token) (window.requestIdleCallback || setTimeout)(want, { timeout: 4000 });
  }

  ((stub && stub.q) || []).forEach((args) => api(...args));
  boot();
})();
