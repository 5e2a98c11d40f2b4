// Building DOM without HTML strings. Every string child becomes a Text
// node and every attribute is set as an attribute, so user data can never
// turn into markup. Nothing in the app ever parses a string as HTML.

// Set as properties (their live state), not as attributes.
const PROPS = new Set(['value', 'checked', 'disabled', 'selected', 'hidden', 'readOnly', 'required', 'multiple', 'indeterminate']);

/** h('button', {class: 'x', onclick: fn}, 'text', child, [more]) */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value == null || value === false) continue;
    if (key === 'class') el.className = Array.isArray(value) ? value.filter(Boolean).join(' ') : value;
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key === 'text') el.textContent = String(value);
    else if (key.startsWith('on')) {
      // Handlers are functions; a string here would be an inline script.
      if (typeof value !== 'function') throw new TypeError(`${key} must be a function`);
      el.addEventListener(key.slice(2), value);
    }
    else if (PROPS.has(key)) el[key] = value;
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child == null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** Replaces all of `el`'s children. */
export function mount(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

/** A labelled form field: <label><span>Label</span> control hint</label>. */
export function field(label, control, hint) {
  return h('label', { class: 'field' }, h('span', { class: 'field__label' }, label), control, hint ? h('small', { class: 'field__hint' }, hint) : null);
}

/** An <a> only for http(s) URLs; anything else (javascript:, data:) is shown as text. */
export function safeLink(url, text) {
  let parsed = null;
  try {
    parsed = new URL(url);
  } catch {
    parsed = null;
  }
  if (!parsed || !['http:', 'https:'].includes(parsed.protocol)) return h('span', {}, text ?? url ?? '');
  return h('a', { href: parsed.href, target: '_blank', rel: 'noopener noreferrer' }, text ?? url);
}

// Where a URL starts in message text; it runs to the next space.
const URLS = /\b(?:https?:\/\/|mailto:)[^\s<>"]+/gi;

/**
 * Message text as nodes: URLs (http, https, mailto) become links that open
 * in a new tab, everything else stays text, line breaks included (the CSS
 * keeps them). Nothing else in the text is parsed.
 */
export function linkify(text) {
  const str = String(text ?? '');
  const out = [];
  let at = 0;
  for (const m of str.matchAll(URLS)) {
    // Trailing punctuation closes the sentence, not the URL.
    const url = m[0].replace(/[.,;:!?'")\]]+$/, '');
    let ok = false;
    try {
      ok = ['http:', 'https:', 'mailto:'].includes(new URL(url).protocol);
    } catch {
      ok = false;
    }
    if (!ok) continue;
    out.push(str.slice(at, m.index), h('a', { href: url, target: '_blank', rel: 'noopener noreferrer nofollow' }, url));
    at = m.index + url.length;
  }
  out.push(str.slice(at));
  return out.filter((part) => part !== '');
}

/** Whether a key event comes from something the user types into. */
export function isTyping(event) {
  const t = event.target;
  return t instanceof HTMLElement && (t.isContentEditable || ['INPUT', 'TEXTAREA', 'SELECT'].includes(t.tagName));
}

export function uuid() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const x = [...b].map((n) => n.toString(16).padStart(2, '0')).join('');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

/** Copies text to the clipboard; falls back to a selected textarea. */
export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    const ta = h('textarea', { class: 'offscreen', readonly: true }, text);
    document.body.append(ta);
    ta.select();
    const ok = document.execCommand('copy');
    ta.remove();
    return ok;
  }
}

const SVG = 'http://www.w3.org/2000/svg';
// Line icons on a 24-unit grid, drawn with the current text colour.
const ICONS = {
  bell: ['M6 9a6 6 0 0 1 12 0c0 6 2.5 8 2.5 8h-17S6 15 6 9', 'M10 20.5a2.2 2.2 0 0 0 4 0'],
  bellOff: ['M6 9a6 6 0 0 1 12 0c0 6 2.5 8 2.5 8h-17S6 15 6 9', 'M10 20.5a2.2 2.2 0 0 0 4 0', 'M3 3l18 18'],
  speaker: ['M4 9h4l5-4v14l-5-4H4z', 'M16.5 8.5a5 5 0 0 1 0 7', 'M19 6a8.5 8.5 0 0 1 0 12'],
  speakerOff: ['M4 9h4l5-4v14l-5-4H4z', 'M17 9.5l5 5', 'M22 9.5l-5 5'],
  clip: ['M20 11.5l-8.3 8.3a5.2 5.2 0 0 1-7.4-7.4l8.6-8.6a3.5 3.5 0 0 1 5 5l-8.6 8.6a1.8 1.8 0 0 1-2.5-2.5l7.9-7.9'],
  logout: ['M9 21H5a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2h4', 'M16 17l5-5-5-5', 'M21 12H9'],
  tune: ['M4 7h9', 'M17 7h3', 'M4 17h3', 'M11 17h9', 'M15 5v4', 'M9 15v4'],
};

/** A small inline SVG icon (no markup strings: built element by element). */
export function icon(name) {
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('width', '16');
  svg.setAttribute('height', '16');
  svg.setAttribute('aria-hidden', 'true');
  svg.setAttribute('class', 'icon');
  for (const d of ICONS[name] || []) {
    const path = document.createElementNS(SVG, 'path');
    path.setAttribute('d', d);
    svg.append(path);
  }
  return svg;
}
