// The agent's own notification settings, from the top bar and on the
// profile page: what to be told
// about (notify.scope), how long to wait first (notify.quietMinutes), and
// Web Push on this device.

import { patch } from '../api.js';
import { field, h, icon, mount } from '../dom.js';
import { t } from '../i18n.js';
import * as notify from '../notify.js';
import * as push from '../push.js';
import { state } from '../store.js';

const MAX_QUIET = 24 * 60;

/** The settings menu: a <details> whose panel holds the form. */
export function prefsMenu() {
  const panel = h('div', { class: 'prefs__panel' });
  const menu = h(
    'details',
    { class: 'prefs', dataset: { menu: 'prefs' } },
    h('summary', { class: 'btn btn--ghost btn--sm', title: t('notify.prefs'), 'aria-label': t('notify.prefs') }, icon('tune')),
    panel,
  );
  menu.addEventListener('toggle', () => {
    if (menu.open) render(panel);
  });
  return menu;
}

/** The same settings as a card of the profile page. */
export function prefsCard() {
  const card = h('section', { class: 'card prefs--card' });
  render(card);
  return card;
}

function render(panel) {
  const prefs = state.me?.notify || { scope: 'all', quietMinutes: 0 };
  const scope = h(
    'select',
    { class: 'input', name: 'scope' },
    ['all', 'assigned', 'none'].map((s) => h('option', { value: s, selected: s === prefs.scope }, t(`notify.scope${s[0].toUpperCase()}${s.slice(1)}`))),
  );
  const quiet = h('input', { class: 'input', name: 'quietMinutes', type: 'number', min: 0, max: MAX_QUIET, step: 1, value: String(prefs.quietMinutes || 0) });
  const status = h('p', { class: 'form-status', role: 'status' });
  const device = h('span', { class: 'prefs__push', dataset: { push: '' } });
  const enable = h('button', { type: 'button', class: 'btn btn--sm', hidden: true, dataset: { action: 'enable-push' } }, t('notify.enable'));
  enable.addEventListener('click', async () => {
    if ((await notify.askPermission()) === 'granted') await push.subscribe().catch(() => false);
    showDevice(device, enable);
  });
  const form = h(
    'form',
    { class: 'prefs__form' },
    h('h3', { class: 'prefs__title' }, t('notify.prefs')),
    field(t('notify.scope'), scope),
    field(t('notify.quiet'), quiet, t('notify.quietHint')),
    h('div', { class: 'prefs__device' }, h('span', {}, t('notify.push')), ' ', device, enable),
    h('div', { class: 'row-buttons' }, h('button', { type: 'submit', class: 'btn btn--primary btn--sm' }, t('common.save')), status),
  );
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const minutes = Math.max(0, Math.min(MAX_QUIET, Math.round(Number(quiet.value) || 0)));
    try {
      const agent = await patch(`/agents/${state.me.id}`, { notify: { scope: scope.value, quietMinutes: minutes } });
      state.me = { ...state.me, notify: agent.notify };
      status.className = 'form-status form-status--ok';
      status.textContent = t('common.saved');
    } catch (err) {
      status.className = 'form-status form-status--error';
      status.textContent = err.message;
    }
  });
  mount(panel, form);
  showDevice(device, enable);
}

async function showDevice(device, enable) {
  const s = await push.status().catch(() => 'unsupported');
  device.dataset.push = s;
  device.textContent = t({ on: 'notify.pushOn', off: 'notify.pushOff', blocked: 'notify.pushBlocked' }[s] || 'notify.pushUnsupported');
  enable.hidden = s !== 'off';
}
