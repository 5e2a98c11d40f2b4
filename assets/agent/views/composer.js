// The reply box of a conversation: Enter sends, Shift+Enter is a new line,
// a reply or a private note, reply-to, canned responses with `/`, files
// (picked, dropped or pasted), and the agent's typing signal to the visitor.

import { upload } from '../api.js';
import { h, icon, mount } from '../dom.js';
import { t } from '../i18n.js';
import { agentName, isAdmin, isOpen, runtime, spaceName, state } from '../store.js';
import { formatSize } from './attachments.js';

const TYPING_EVERY_MS = 2500;
const TYPING_IDLE_MS = 4000;
// "/word" right before the caret, at the start or after a space.
const SLASH = /(?:^|\s)(\/[\w-]*)$/;
/**
 * A canned response's text for this conversation: {visitor.name},
 * {agent.name} and {space.name} filled in. An unnamed visitor has no name
 * to put in: the placeholder goes, with the space before it.
 */
export function fillPlaceholders(body, thread) {
  const values = {
    visitor: thread?.visitorNumber ? '' : thread?.visitorName || '',
    agent: state.me?.displayName || '',
    space: spaceName(thread?.chatSpaceId),
  };
  return body.replace(/( ?)\{(visitor|agent|space)\.name\}/g, (_, gap, key) => (values[key] ? gap + values[key] : ''));
}

export class Composer {
  /** onSend({content, internal, replyToId, attachments}); describe(message) -> "Author: text" */
  constructor({ threadId, onSend, describe }) {
    this.threadId = threadId;
    this.onSend = onSend;
    this.describe = describe;
    this.mode = 'reply';
    this.replyTo = null;
    this.thread = null;
    this.matches = [];
    this.selected = 0;
    this.typingSent = 0;
    this.typingOn = false;
    this.files = [];
    this.build();
  }

  build() {
    this.replyTab = h('button', { type: 'button', class: 'mode', 'aria-pressed': 'true', onclick: () => this.setMode('reply') }, t('composer.reply'));
    this.noteTab = h('button', { type: 'button', class: 'mode mode--note', 'aria-pressed': 'false', onclick: () => this.setMode('note') }, t('composer.note'));
    this.hint = h('span', { class: 'composer__hint' });
    this.quote = h('div', { class: 'composer__replyto', hidden: true });
    this.input = h('textarea', { class: 'composer__input', name: 'reply', rows: 2, maxlength: 5000, 'aria-label': t('composer.reply') });
    this.popup = h('ul', { class: 'templates', role: 'listbox', hidden: true, 'aria-label': t('composer.templates') });
    this.sendButton = h('button', { type: 'submit', class: 'btn btn--primary composer__send' }, t('composer.send'));
    this.picker = h('input', { type: 'file', multiple: true, hidden: true, name: 'files' });
    this.picker.addEventListener('change', () => {
      this.addFiles(this.picker.files);
      this.picker.value = '';
    });
    this.fileList = h('div', { class: 'composer__files', hidden: true });
    const attach = h('button', { type: 'button', class: 'btn btn--ghost btn--sm composer__attach', title: t('files.attach'), 'aria-label': t('files.attach'), onclick: () => this.picker.click() }, icon('clip'));
    this.form = h(
      'form',
      { class: 'composer' },
      h('div', { class: 'composer__bar' }, this.replyTab, this.noteTab, this.hint, attach, this.picker),
      this.quote,
      this.fileList,
      h('div', { class: 'composer__row' }, h('div', { class: 'composer__field' }, this.input, this.popup), this.sendButton),
    );
    this.el = this.form;
    this.form.addEventListener('submit', (e) => {
      e.preventDefault();
      this.submit();
    });
    this.input.addEventListener('keydown', (e) => this.keydown(e));
    this.input.addEventListener('input', () => this.changed());
    this.input.addEventListener('paste', (e) => {
      if (e.clipboardData?.files?.length) {
        e.preventDefault();
        this.addFiles(e.clipboardData.files);
      }
    });
    // Picking a template with the mouse keeps the focus (see renderPopup),
    // so a blur means the agent went elsewhere.
    this.input.addEventListener('blur', () => {
      this.stopTyping();
      this.closePopup();
    });
    this.setMode('reply');
  }

  destroy() {
    this.stopTyping();
  }

  /** The thread changed: who may reply, and whether it is open. */
  update(thread) {
    this.thread = thread;
    this.refresh();
  }

  refresh() {
    const th = this.thread;
    let blocked = '';
    if (th && this.mode === 'reply') {
      const holder = th.assignedAgentId;
      if (!isOpen(th)) blocked = t('composer.closed');
      else if (holder && holder !== state.me?.id && !isAdmin()) blocked = t('composer.heldByOther', { name: th.assignedAgentName || agentName(holder) || t('thread.someone') });
    }
    this.hint.textContent = blocked || (this.mode === 'note' ? t('composer.noteHint') : th?.status === 'unassigned' ? t('composer.claimHint') : '');
    this.sendButton.disabled = !!blocked || this.files.some((f) => f.state === 'uploading');
    this.input.placeholder = this.mode === 'note' ? t('composer.notePlaceholder') : t('composer.placeholder');
  }

  setMode(mode) {
    if (mode === 'note') this.stopTyping();
    this.mode = mode;
    this.form.classList.toggle('composer--note', mode === 'note');
    this.replyTab.setAttribute('aria-pressed', String(mode === 'reply'));
    this.noteTab.setAttribute('aria-pressed', String(mode === 'note'));
    this.sendButton.textContent = mode === 'note' ? t('composer.addNote') : t('composer.send');
    this.refresh();
  }

  setReplyTo(message) {
    this.replyTo = message;
    if (!message) {
      this.quote.hidden = true;
      mount(this.quote);
      return;
    }
    mount(
      this.quote,
      h('span', { class: 'composer__replyto-text' }, t('composer.replyingTo'), ' ', this.describe(message)),
      h('button', { type: 'button', class: 'btn btn--ghost btn--sm', 'aria-label': t('composer.cancelReplyTo'), onclick: () => this.setReplyTo(null) }, '×'),
    );
    this.quote.hidden = false;
    this.input.focus();
  }

  /** Focuses the box; with `slash`, starts a template search. */
  focus(slash = false) {
    this.input.focus();
    if (slash) {
      const pos = this.input.selectionStart;
      const before = this.input.value.slice(0, pos);
      const insert = before && !/\s$/.test(before) ? ' /' : '/';
      this.input.setRangeText(insert, pos, this.input.selectionEnd, 'end');
      this.changed();
    }
  }

  submit() {
    if (this.sendButton.disabled) return;
    const content = this.input.value.trim();
    const attachments = this.files.filter((f) => f.state === 'done').map((f) => f.ref);
    if (!content && !attachments.length) return;
    this.onSend({ content, internal: this.mode === 'note', replyToId: this.replyTo?.id || undefined, attachments });
    this.input.value = '';
    this.files = [];
    this.renderFiles();
    this.setReplyTo(null);
    this.stopTyping();
    this.closePopup();
    this.autosize();
  }

  /** Puts a failed message's text back. */
  restore(content) {
    if (!this.input.value) this.input.value = content;
    this.autosize();
  }

  keydown(e) {
    const open = !this.popup.hidden && this.matches.length > 0;
    if (open && (e.key === 'ArrowDown' || e.key === 'ArrowUp')) {
      e.preventDefault();
      this.selected = (this.selected + (e.key === 'ArrowDown' ? 1 : -1) + this.matches.length) % this.matches.length;
      this.renderPopup();
      return;
    }
    if (open && (e.key === 'Enter' || e.key === 'Tab') && !e.shiftKey) {
      e.preventDefault();
      this.insert(this.matches[this.selected]);
      return;
    }
    if (e.key === 'Escape') {
      if (!this.popup.hidden) this.closePopup();
      else if (this.replyTo) this.setReplyTo(null);
      else this.input.blur();
      e.preventDefault();
      return;
    }
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      this.submit();
    }
  }

  changed() {
    this.autosize();
    this.updatePopup();
    if (this.mode === 'reply' && this.input.value.trim()) this.startTyping();
    else this.stopTyping();
  }

  autosize() {
    this.input.style.height = 'auto';
    this.input.style.height = `${Math.min(this.input.scrollHeight + 2, 220)}px`;
  }

  startTyping() {
    const now = Date.now();
    if (!this.typingOn || now - this.typingSent > TYPING_EVERY_MS) {
      if (runtime.socket?.send({ type: 'agent:typing', threadId: this.threadId, isTyping: true })) {
        this.typingOn = true;
        this.typingSent = now;
      }
    }
    clearTimeout(this.idle);
    this.idle = setTimeout(() => this.stopTyping(), TYPING_IDLE_MS);
  }

  stopTyping() {
    clearTimeout(this.idle);
    if (!this.typingOn) return;
    this.typingOn = false;
    runtime.socket?.send({ type: 'agent:typing', threadId: this.threadId, isTyping: false });
  }

  // Files.

  addFiles(list) {
    for (const file of list) {
      const entry = { file, state: 'uploading', ref: null, error: '' };
      this.files.push(entry);
      upload(`/attachments?threadId=${encodeURIComponent(this.threadId)}`, file).then(
        (view) => {
          entry.state = 'done';
          entry.ref = { id: view.id, name: view.name, mimeType: view.mimeType, sizeBytes: view.sizeBytes, thumbnail: view.thumbnail };
          this.renderFiles();
        },
        (e) => {
          entry.state = 'failed';
          entry.error = e.message;
          this.renderFiles();
        },
      );
    }
    this.renderFiles();
    this.input.focus();
  }

  renderFiles() {
    this.fileList.hidden = !this.files.length;
    mount(
      this.fileList,
      this.files.map((f) =>
        h(
          'span',
          { class: ['chip-file', `chip-file--${f.state}`], title: f.error || null },
          h('span', { class: 'chip-file__name' }, f.file.name || t('files.pasted')),
          h('small', { class: 'muted' }, f.state === 'uploading' ? t('files.uploading') : f.state === 'failed' ? f.error || t('files.failed') : formatSize(f.file.size)),
          h(
            'button',
            {
              type: 'button',
              class: 'btn btn--ghost btn--sm',
              'aria-label': t('common.remove'),
              onclick: () => {
                this.files = this.files.filter((x) => x !== f);
                this.renderFiles();
              },
            },
            '×',
          ),
        ),
      ),
    );
    this.refresh();
  }

  // Canned responses.

  templates() {
    const space = this.thread?.chatSpaceId;
    return state.templates.filter((tp) => !tp.chatSpaceId || tp.chatSpaceId === space);
  }

  updatePopup() {
    const before = this.input.value.slice(0, this.input.selectionStart);
    const m = before.match(SLASH);
    if (!m) {
      this.closePopup();
      return;
    }
    const word = m[1].toLowerCase();
    const name = word.slice(1);
    this.matches = this.templates()
      .filter((tp) => tp.shortcut.startsWith(word) || (name && tp.title.toLowerCase().includes(name)))
      .sort((a, b) => a.shortcut.localeCompare(b.shortcut));
    this.selected = 0;
    this.popup.hidden = false;
    this.renderPopup();
  }

  renderPopup() {
    if (!this.matches.length) {
      const create = isAdmin() ? h('a', { class: 'templates__create', href: '#/admin/templates', onmousedown: (e) => e.preventDefault() }, t('composer.createTemplate')) : null;
      mount(this.popup, h('li', { class: 'templates__empty' }, state.templates.length ? t('composer.noTemplateMatch') : t('composer.noTemplates'), create ? [' ', create] : null));
      return;
    }
    mount(
      this.popup,
      this.matches.map((tp, i) => {
        const li = h(
          'li',
          { role: 'option', class: ['templates__item', i === this.selected && 'templates__item--selected'], 'aria-selected': String(i === this.selected), dataset: { shortcut: tp.shortcut } },
          h('span', { class: 'templates__shortcut' }, tp.shortcut),
          h('span', { class: 'templates__title' }, tp.title),
          h('span', { class: 'templates__body' }, tp.body),
        );
        // mousedown, not click: the textarea must keep its caret.
        li.addEventListener('mousedown', (e) => {
          e.preventDefault();
          this.insert(tp);
        });
        return li;
      }),
    );
    this.popup.querySelector('.templates__item--selected')?.scrollIntoView({ block: 'nearest' });
  }

  closePopup() {
    this.popup.hidden = true;
    this.matches = [];
  }

  insert(template) {
    const pos = this.input.selectionStart;
    const before = this.input.value.slice(0, pos);
    const m = before.match(SLASH);
    const start = m ? pos - m[1].length : pos;
    this.input.setRangeText(fillPlaceholders(template.body, this.thread), start, pos, 'end');
    this.closePopup();
    this.input.focus();
    this.changed();
    this.closePopup();
  }
}
