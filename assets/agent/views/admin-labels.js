// Admin: the organization's labels, each with a colour. Agents put them on
// conversations and filter the inbox by them.

import { del, patch, post } from '../api.js';
import { field, h, mount } from '../dom.js';
import { t } from '../i18n.js';
import '../i18n-desk.js';
import { state } from '../store.js';
import { chip, loadLabels } from './labels.js';
import { statusLine } from './status-line.js';

export class LabelsPage {
  constructor(root) {
    this.status = statusLine();
    this.list = h('ul', { class: 'card plain-list', dataset: { list: 'labels' } });
    const name = h('input', { class: 'input', name: 'name', required: true, maxlength: 40 });
    const color = h('input', { class: 'input', name: 'color', type: 'color', value: '#2563eb' });
    const form = h(
      'form',
      { class: 'card stack', dataset: { form: 'label' } },
      h('h2', {}, t('labels.add')),
      h('div', { class: 'inline-fields' }, field(t('labels.name'), name), field(t('labels.color'), color)),
      h('div', { class: 'row-buttons' }, h('button', { class: 'btn btn--primary', type: 'submit' }, t('labels.add'))),
    );
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      try {
        await post('/labels', { name: name.value, color: color.value });
        name.value = '';
        this.status.ok(t('common.saved'));
        await this.load();
      } catch (err) {
        this.status.error(err);
      }
    });
    mount(root, h('div', { class: 'stack' }, form, this.status.el, this.list));
    this.load();
  }

  destroy() {}

  async load() {
    await loadLabels();
    this.render();
  }

  render() {
    const labels = state.labels || [];
    mount(
      this.list,
      labels.length
        ? labels.map((l) => {
            const color = h('input', { class: 'input input--sm', type: 'color', value: l.color, 'aria-label': `${t('labels.color')} ${l.name}` });
            color.addEventListener('change', async () => {
              try {
                await patch(`/labels/${l.id}`, { color: color.value });
                await this.load();
              } catch (e) {
                this.status.error(e);
              }
            });
            const remove = async () => {
              if (!window.confirm(t('labels.deleteConfirm', { name: l.name }))) return;
              try {
                await del(`/labels/${l.id}`);
                await this.load();
              } catch (e) {
                this.status.error(e);
              }
            };
            return h('li', { class: 'plain-list__row', dataset: { id: l.id } }, chip(l), color, h('button', { type: 'button', class: 'btn btn--sm btn--danger', onclick: remove }, t('common.delete')));
          })
        : h('li', { class: 'muted' }, t('labels.none')),
    );
  }
}
