// The contact part of the visitor panel: agents' notes, the custom
// attributes (agents may add, change and remove them too), and starting a
// new conversation with this visitor.

import { patch, post } from '../api.js';
import { field, h, uuid } from '../dom.js';
import { t } from '../i18n.js';
import '../i18n-desk.js';
import { upsertThread } from '../store.js';

/** Notes and attributes of `visitor`; `saved(visitor)` after each change. */
export function contactSection(visitor, saved) {
  const error = h('p', { class: 'form-error', hidden: true });
  const show = (e) => {
    error.textContent = e.message;
    error.hidden = false;
  };
  const send = async (body) => {
    try {
      error.hidden = true;
      saved(await patch(`/visitors/${visitor.id}`, body));
    } catch (e) {
      show(e);
    }
  };

  const notes = h('textarea', { class: 'input', name: 'notes', rows: 3, maxlength: 5000, dataset: { field: 'notes' } }, visitor.notes || '');
  const saveNotes = h('button', { type: 'button', class: 'btn btn--sm', dataset: { action: 'save-notes' }, onclick: () => send({ notes: notes.value.trim() || null }) }, t('common.save'));

  const key = h('input', { class: 'input input--sm', name: 'attrKey', placeholder: t('contact.key'), 'aria-label': t('contact.key'), maxlength: 40 });
  const value = h('input', { class: 'input input--sm', name: 'attrValue', placeholder: t('contact.value'), 'aria-label': t('contact.value'), maxlength: 200 });
  const add = h('form', { class: 'inline-fields contact__add' }, key, value, h('button', { type: 'submit', class: 'btn btn--sm', dataset: { action: 'add-attribute' } }, t('contact.addAttribute')));
  add.addEventListener('submit', (e) => {
    e.preventDefault();
    if (key.value.trim()) send({ attributes: { [key.value.trim()]: value.value } });
  });
  const entries = Object.entries(visitor.attributes || {});
  return h(
    'section',
    { class: 'contact' },
    h('h3', { class: 'visitor__section' }, t('contact.notes')),
    field(t('contact.notes'), notes, t('contact.notesHint')),
    saveNotes,
    h('h3', { class: 'visitor__section' }, t('contact.attributes')),
    entries.length
      ? h(
          'dl',
          { class: 'facts visitor__attributes' },
          entries.flatMap(([k, v]) => [
            h('dt', {}, k),
            h('dd', {}, typeof v === 'string' ? v : JSON.stringify(v), ' ', h('button', { type: 'button', class: 'btn btn--ghost btn--sm', 'aria-label': `${t('common.remove')} ${k}`, onclick: () => send({ attributes: { [k]: null } }) }, '×')),
          ]),
        )
      : null,
    add,
    error,
  );
}

/** A button that opens a small form to start a conversation with the
 * visitor; `opened(thread)` gets the new thread. Shown only while the
 * visitor has no open conversation. */
export function newConversation(visitor, opened) {
  const subject = h('input', { class: 'input', name: 'subject', maxlength: 200 });
  const content = h('textarea', { class: 'input', name: 'content', rows: 2, required: true, maxlength: 5000 });
  const error = h('p', { class: 'form-error', hidden: true });
  const form = h(
    'form',
    { class: 'stack contact__start', hidden: true },
    field(t('contact.subject'), subject),
    field(t('contact.firstMessage'), content),
    error,
    h('button', { type: 'submit', class: 'btn btn--primary btn--sm', dataset: { action: 'start-conversation' } }, t('contact.start')),
  );
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    try {
      const thread = await post('/threads', {
        visitorId: visitor.id,
        subject: subject.value.trim() || null,
        content: content.value,
        clientMsgId: uuid(),
      });
      upsertThread(thread);
      opened(thread);
    } catch (err) {
      error.textContent = err.message;
      error.hidden = false;
    }
  });
  const button = h(
    'button',
    {
      type: 'button',
      class: 'btn btn--sm',
      dataset: { action: 'new-conversation' },
      onclick: () => {
        form.hidden = !form.hidden;
        if (!form.hidden) content.focus();
      },
    },
    t('contact.newConversation'),
  );
  return h('div', { class: 'contact__new' }, button, form);
}
