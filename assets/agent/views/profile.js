// The signed-in agent's own page: the away switch, the name visitors and
// colleagues see, the password, the app's language and the notification
// settings (also in the top bar's menu).

import { del, patch, putFile, renewSession } from '../api.js';
import { field, h, mount } from '../dom.js';
import { languagePicker, t } from '../i18n.js';
import { emit, state } from '../store.js';
import { prefsCard } from './prefs.js';
import { statusLine } from './status-line.js';

export class Profile {
  constructor(root) {
    this.root = root;
    document.body.dataset.screen = 'profile';
    this.render();
  }

  update() {}

  destroy() {}

  render() {
    mount(this.root, h('div', { class: 'admin' }, h('div', { class: 'admin__body profile' }, h('h1', {}, t('profile.title')), this.awayField(), this.nameForm(), this.avatarCard(), this.passwordForm(), this.languageField(), prefsCard())));
  }

  nameForm() {
    const name = h('input', { class: 'input', name: 'displayName', required: true, maxlength: 100, value: state.me?.displayName || '' });
    const status = statusLine();
    const form = h('form', { class: 'card', dataset: { form: 'profile-name' } }, h('h2', {}, t('profile.name')), field(t('profile.nameLabel'), name, t('profile.nameHint')), h('div', { class: 'row-buttons' }, h('button', { type: 'submit', class: 'btn btn--primary' }, t('common.save')), status.el));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      try {
        const agent = await patch(`/agents/${state.me.id}`, { displayName: name.value.trim() });
        state.me = { ...state.me, displayName: agent.displayName };
        const mine = state.agents.find((a) => a.id === agent.id);
        if (mine) mine.displayName = agent.displayName;
        for (const el of document.querySelectorAll('.topbar .me')) el.textContent = agent.displayName;
        emit('agents');
        status.ok(t('common.saved'));
      } catch (err) {
        status.error(err);
      }
    });
    return form;
  }

  // The picture visitors see beside the name: PNG, JPEG, WebP or GIF, made
  // a small square by the server.
  avatarCard() {
    const img = h('img', { class: 'avatar-preview', alt: '', width: 64, height: 64 });
    const status = statusLine();
    const input = h('input', { type: 'file', name: 'avatar', accept: 'image/png,image/jpeg,image/webp,image/gif' });
    const remove = h('button', { type: 'button', class: 'btn', dataset: { action: 'remove-avatar' } }, t('profile.avatarRemove'));
    const show = (agent) => {
      state.me = { ...state.me, avatar: agent.avatar };
      img.hidden = remove.hidden = !agent.avatar;
      if (agent.avatar) img.src = `/api/v1/widget/avatars/${agent.id}?v=${agent.avatar}`;
    };
    show(state.me || {});
    const done = async (work) => {
      try {
        show(await work());
        status.ok(t('common.saved'));
      } catch (err) {
        status.error(err);
      }
    };
    input.addEventListener('change', () => input.files[0] && done(() => putFile(`/agents/${state.me.id}/avatar`, input.files[0])).then(() => (input.value = '')));
    remove.addEventListener('click', () => done(() => del(`/agents/${state.me.id}/avatar`)));
    return h('div', { class: 'card', dataset: { form: 'profile-avatar' } }, h('h2', {}, t('profile.avatar')), img, field(t('profile.avatarLabel'), input, t('profile.avatarHint')), h('div', { class: 'row-buttons' }, remove, status.el));
  }

  passwordForm() {
    const current = h('input', { class: 'input', name: 'currentPassword', type: 'password', required: true, autocomplete: 'current-password' });
    const next = h('input', { class: 'input', name: 'newPassword', type: 'password', required: true, minlength: 8, autocomplete: 'new-password' });
    const status = statusLine();
    const form = h('form', { class: 'card', dataset: { form: 'profile-password' } }, h('h2', {}, t('profile.password')), field(t('profile.current'), current), field(t('profile.new'), next, t('profile.newHint')), h('div', { class: 'row-buttons' }, h('button', { type: 'submit', class: 'btn btn--primary' }, t('profile.change')), status.el));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      try {
        // Every other session ends; this one continues with fresh tokens.
        await renewSession('/auth/password', { currentPassword: current.value, newPassword: next.value });
        current.value = '';
        next.value = '';
        status.ok(t('profile.changed'));
      } catch (err) {
        status.error(err);
      }
    });
    return form;
  }

  /** Away: connected, but visitors see nobody online unless a colleague is. */
  awayField() {
    const box = h('input', { type: 'checkbox', name: 'away', checked: !!state.me?.away });
    const status = statusLine();
    box.addEventListener('change', async () => {
      try {
        const agent = await patch(`/agents/${state.me.id}`, { away: box.checked });
        state.me = { ...state.me, away: agent.away };
        status.ok(agent.away ? t('profile.awayOn') : t('profile.awayOff'));
      } catch (err) {
        box.checked = !box.checked;
        status.error(err);
      }
    });
    return h('section', { class: 'card', dataset: { form: 'profile-away' } }, h('h2', {}, t('profile.availability')), h('label', { class: 'check' }, box, ' ', t('profile.away')), h('p', { class: 'muted' }, t('profile.awayHint')), status.el);
  }

  languageField() {
    return h('section', { class: 'card' }, h('h2', {}, t('profile.language')), languagePicker());
  }
}
