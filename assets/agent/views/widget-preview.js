// A live preview of the widget as a space's settings describe it, drawn
// from the unsaved form values (the real widget only runs on allowed
// sites). Colours go in through CSSOM, which the CSP allows, never as a
// style attribute.

import { h, mount } from '../dom.js';
import { t } from '../i18n.js';

const HEX = /^#[0-9a-fA-F]{6}$/;

export class WidgetPreview {
  constructor() {
    this.el = h('div', { class: 'wpreview', 'aria-label': t('spaces.preview'), role: 'img' });
  }

  /** settings: the form's current SpaceSettings-shaped values. */
  update(s) {
    const dark = s.theme === 'dark' || (s.theme === 'auto' && window.matchMedia?.('(prefers-color-scheme: dark)').matches);
    this.el.className = ['wpreview', dark ? 'wpreview--dark' : 'wpreview--light', s.position === 'bottomLeft' ? 'wpreview--left' : 'wpreview--right'].join(' ');
    this.el.style.setProperty('--w-accent', HEX.test(s.accentColor) ? s.accentColor : '#2563eb');
    mount(
      this.el,
      h('div', { class: 'wpreview__site' }, h('span', {}), h('span', {}), h('span', {})),
      h(
        'div',
        { class: 'wpreview__panel' },
        h('div', { class: 'wpreview__head' }, h('strong', {}, s.title || ' '), h('small', {}, t('spaces.previewOnline'))),
        h('div', { class: 'wpreview__body' }, s.welcomeMessage ? h('p', { class: 'wpreview__bubble' }, s.welcomeMessage) : null),
        h('div', { class: 'wpreview__input' }, t('spaces.previewInput')),
      ),
      h('div', { class: 'wpreview__launcher', 'aria-hidden': 'true' }),
    );
  }
}
