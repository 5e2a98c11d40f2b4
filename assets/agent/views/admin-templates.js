// Admin: canned responses. Agents insert them in the reply box by typing
// their `/shortcut`.

import { del, get, patch, post } from '../api.js';
import { field, h, mount } from '../dom.js';
import { t } from '../i18n.js';
import { emit, spaceName, state } from '../store.js';
import { statusLine } from './status-line.js';

export class TemplatesPage {
  constructor(root) {
    this.status = statusLine();
    this.formBox = h('div');
    this.list = h('ul', { class: 'card plain-list' });
    mount(root, h('div', { class: 'stack' }, this.formBox, this.status.el, this.list));
    this.editing = null;
    this.renderForm();
    this.load();
  }

  destroy() {}

  async load() {
    try {
      state.templates = (await get('/templates')).items;
      emit('templates');
    } catch (e) {
      this.status.error(e);
    }
    this.render();
  }

  renderForm() {
    const tp = this.editing;
    const form = h(
      'form',
      { class: 'card stack', dataset: { form: 'template' } },
      h('h2', {}, tp ? t('templates.edit') : t('templates.add')),
      h(
        'div',
        { class: 'inline-fields' },
        field(t('templates.shortcut'), h('input', { class: 'input', name: 'shortcut', required: true, placeholder: '/hello', value: tp?.shortcut || '' })),
        field(t('templates.title'), h('input', { class: 'input', name: 'title', required: true, maxlength: 100, value: tp?.title || '' })),
        field(
          t('templates.space'),
          h(
            'select',
            { class: 'input', name: 'chatSpaceId' },
            h('option', { value: '' }, t('templates.allSpaces')),
            state.spaces.map((s) => h('option', { value: s.id, selected: tp?.chatSpaceId === s.id }, s.name)),
          ),
        ),
      ),
      field(t('templates.body'), h('textarea', { class: 'input', name: 'body', rows: 4, required: true }, tp?.body || '')),
      h('p', { class: 'muted templates__hint' }, t('composer.placeholders')),
      h(
        'div',
        { class: 'row-buttons' },
        h('button', { class: 'btn btn--primary', type: 'submit' }, tp ? t('common.save') : t('templates.create')),
        tp
          ? h(
              'button',
              {
                type: 'button',
                class: 'btn btn--ghost',
                onclick: () => {
                  this.editing = null;
                  this.renderForm();
                },
              },
              t('common.cancel'),
            )
          : null,
      ),
    );
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const v = Object.fromEntries(new FormData(form).entries());
      const body = { shortcut: v.shortcut, title: v.title, body: v.body, chatSpaceId: v.chatSpaceId || null };
      try {
        if (tp) await patch(`/templates/${tp.id}`, body);
        else await post('/templates', { ...body, chatSpaceId: body.chatSpaceId || undefined });
        this.editing = null;
        this.renderForm();
        this.status.ok(t('common.saved'));
        this.load();
      } catch (err) {
        this.status.error(err);
      }
    });
    mount(this.formBox, form);
  }

  render() {
    if (!state.templates.length) {
      mount(this.list, h('li', { class: 'muted' }, t('templates.none')));
      return;
    }
    const admin = state.me?.role === 'admin' || state.me?.role === 'owner';
    mount(
      this.list,
      [...state.templates]
        .sort((a, b) => a.shortcut.localeCompare(b.shortcut))
        .map((tp) =>
          h(
            'li',
            { class: 'plain-list__item template-item' },
            h('code', {}, tp.shortcut),
            h('strong', {}, tp.title),
            h('span', { class: 'muted' }, tp.chatSpaceId ? spaceName(tp.chatSpaceId) : t('templates.allSpaces')),
            h('p', { class: 'template-item__body' }, tp.body),
            admin
              ? h(
                  'div',
                  { class: 'row-buttons' },
                  h(
                    'button',
                    {
                      type: 'button',
                      class: 'btn btn--sm',
                      onclick: () => {
                        this.editing = tp;
                        this.renderForm();
                        window.scrollTo(0, 0);
                      },
                    },
                    t('common.edit'),
                  ),
                  h(
                    'button',
                    {
                      type: 'button',
                      class: 'btn btn--sm btn--danger',
                      onclick: async () => {
                        if (!window.confirm(t('templates.deleteConfirm', { shortcut: tp.shortcut }))) return;
                        try {
                          await del(`/templates/${tp.id}`);
                          this.load();
                        } catch (e) {
                          this.status.error(e);
                        }
                      },
                    },
                    t('common.delete'),
                  ),
                )
              : null,
          ),
        ),
    );
  }
}
