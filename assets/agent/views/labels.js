// Labels and priority on a conversation: coloured chips, the keyboard
// label picker (l), the priority menu, and the inbox's label filter.
// The organization's labels live in `state.labels` (loaded at start and
// by the admin page).

import { get, patch } from '../api.js';
import { h, mount } from '../dom.js';
import { t } from '../i18n.js';
import '../i18n-desk.js';
import { emit, state, upsertThread } from '../store.js';

export const PRIORITIES = ['none', 'low', 'medium', 'high', 'urgent'];

/** Loads the organization's labels into the store. */
export async function loadLabels() {
  try {
    state.labels = (await get('/labels')).items;
  } catch {
    state.labels = state.labels || [];
  }
  emit('labels');
}

function labelOf(id) {
  return (state.labels || []).find((l) => l.id === id);
}

/** One label as a chip in its colour (set through the CSSOM; the CSP
 * forbids style attributes). */
export function chip(label) {
  const el = h('span', { class: 'label-chip', dataset: { label: label.id } }, label.name);
  el.style.setProperty('--label-color', label.color);
  return el;
}

/** The chips of a thread's labels, in the thread's order. */
export function labelChips(thread) {
  const labels = (thread.labels || []).map(labelOf).filter(Boolean);
  return labels.length ? h('span', { class: 'label-chips' }, labels.map(chip)) : null;
}

/** A priority badge, or nothing for "none". */
export function priorityBadge(thread) {
  const p = thread.priority || 'none';
  return p === 'none' ? null : h('span', { class: ['priority', `priority--${p}`], dataset: { priority: p } }, t(`priority.${p}`));
}

/** The priority menu of a conversation; `failed` shows an error. */
export function priorityControl(thread, failed) {
  const select = h(
    'select',
    { class: 'input input--sm', 'aria-label': t('priority.label'), dataset: { action: 'priority' } },
    PRIORITIES.map((p) => h('option', { value: p, selected: p === (thread.priority || 'none') }, t(`priority.${p}`))),
  );
  select.addEventListener('change', async () => {
    try {
      upsertThread(await patch(`/threads/${thread.id}`, { priority: select.value }));
    } catch (e) {
      failed(e);
    }
  });
  return select;
}

/**
 * The label picker: a button that opens a filterable list. Keyboard: type
 * to filter, ↑/↓ to move, Enter or Space to put the label on or take it
 * off, Esc to close. Each change is saved at once.
 */
export class LabelPicker {
  constructor(thread, failed) {
    this.thread = thread;
    this.failed = failed;
    this.active = 0;
    this.button = h('button', { type: 'button', class: 'btn btn--sm btn--ghost', dataset: { action: 'labels' }, title: `${t('labels.edit')} (l)`, 'aria-haspopup': 'listbox', onclick: () => this.toggle() }, t('labels.edit'));
    this.filter = h('input', { class: 'input input--sm', type: 'search', placeholder: t('labels.search'), 'aria-label': t('labels.search') });
    this.list = h('ul', { class: 'label-picker__list', role: 'listbox', 'aria-multiselectable': 'true', 'aria-label': t('labels.edit') });
    this.panel = h('div', { class: 'label-picker__panel', hidden: true }, this.filter, this.list, h('small', { class: 'muted' }, t('labels.pickerHint')));
    this.el = h('span', { class: 'label-picker' }, this.button, this.panel);
    this.filter.addEventListener('input', () => {
      this.active = 0;
      this.render();
    });
    this.filter.addEventListener('keydown', (e) => this.key(e));
  }

  matches() {
    const q = this.filter.value.trim().toLowerCase();
    return (state.labels || []).filter((l) => !q || l.name.toLowerCase().includes(q));
  }

  open() {
    this.panel.hidden = false;
    this.button.setAttribute('aria-expanded', 'true');
    this.filter.value = '';
    this.active = 0;
    this.render();
    this.filter.focus();
  }

  close() {
    this.panel.hidden = true;
    this.button.setAttribute('aria-expanded', 'false');
  }

  toggle() {
    if (this.panel.hidden) this.open();
    else this.close();
  }

  key(e) {
    const n = this.matches().length;
    if (e.key === 'ArrowDown') this.active = Math.min(n - 1, this.active + 1);
    else if (e.key === 'ArrowUp') this.active = Math.max(0, this.active - 1);
    else if (e.key === 'Enter' || (e.key === ' ' && !this.filter.value)) {
      const label = this.matches()[this.active];
      if (label) this.flip(label);
    } else if (e.key === 'Escape') {
      this.close();
      this.button.focus();
    } else return;
    e.preventDefault();
    e.stopPropagation();
    this.render();
  }

  async flip(label) {
    const current = this.thread.labels || [];
    const labels = current.includes(label.id) ? current.filter((id) => id !== label.id) : [...current, label.id];
    try {
      const fresh = await patch(`/threads/${this.thread.id}`, { labels });
      this.thread = fresh;
      upsertThread(fresh);
      this.render();
    } catch (e) {
      this.failed(e);
    }
  }

  render() {
    const on = new Set(this.thread.labels || []);
    const labels = this.matches();
    mount(
      this.list,
      labels.length
        ? labels.map((l, i) =>
            h(
              'li',
              { role: 'option', 'aria-selected': on.has(l.id) ? 'true' : 'false', class: ['label-picker__item', i === this.active && 'label-picker__item--active'], dataset: { label: l.id }, onclick: () => this.flip(l) },
              h('span', { class: 'label-picker__check', 'aria-hidden': 'true' }, on.has(l.id) ? '✓' : ''),
              chip(l),
            ),
          )
        : h('li', { class: 'muted' }, t('labels.none')),
    );
  }
}

/** The inbox's label filter; calls `change(id)` with '' for any label. */
export function labelFilter(value, change) {
  const select = h('select', { name: 'label', class: 'input', 'aria-label': t('labels.filter') });
  const fill = () => mount(select, h('option', { value: '' }, t('labels.filter')), (state.labels || []).map((l) => h('option', { value: l.id, selected: l.id === value() }, l.name)));
  fill();
  select.addEventListener('change', () => change(select.value));
  return { el: select, refresh: fill };
}

/**
 * The bar under a conversation's header: its label chips, the picker and
 * the priority menu. It stays put while the header re-renders, so the
 * picker keeps its focus and place; `update(thread)` refreshes the rest.
 */
export class ThreadTags {
  constructor(failed) {
    this.failed = failed;
    this.thread = null;
    this.picker = null;
    this.chips = h('span', { class: 'thread-tags__chips' });
    this.priority = h('span', { class: 'thread-tags__priority' });
    this.el = h('div', { class: 'thread-tags', hidden: true });
  }

  update(thread) {
    const first = !this.thread;
    this.thread = thread;
    // Object-bound conversations have no visitor queue to sort.
    this.el.hidden = !!thread.members;
    if (first) {
      this.picker = new LabelPicker(thread, this.failed);
      mount(this.el, this.chips, this.picker.el, this.priority);
    }
    this.picker.thread = thread;
    if (!this.picker.panel.hidden) this.picker.render();
    mount(this.chips, labelChips(thread));
    mount(this.priority, priorityBadge(thread), priorityControl(thread, this.failed));
  }

  /** Opens the label picker (the `l` shortcut). */
  open() {
    if (this.picker && !this.el.hidden) this.picker.open();
  }
}
