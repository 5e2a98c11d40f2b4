// The agent app's entry: hash routing, signing in and out, the shell
// (top bar with navigation, connection state, presence, notifications),
// the socket's frames into the store, and keyboard shortcuts.

import * as api from './api.js';
import { h, icon, isTyping, mount } from './dom.js';
import { languagePicker, t, visitorLabel } from './i18n.js';
import * as notify from './notify.js';
import * as push from './push.js';
import { AgentSocket } from './socket.js';
import { emit, inView, isAdmin, on, removeThread, reset, runtime, state, totalUnread, upsertThread } from './store.js';
import { Admin } from './views/admin.js';
import { Inbox } from './views/inbox.js';
import { loadLabels } from './views/labels.js';
import { renderInvite, renderLogin, renderRegister, renderSignedOut } from './views/login.js';
import { prefsMenu } from './views/prefs.js';
import { Profile } from './views/profile.js';

const root = document.getElementById('app');
const APP_NAME = 'My-Chat';
let shell = null;
let page = null;
let starting = null;
let loginNotice = null;
let offs = [];
let directoryTimer = 0;

function routeParts() {
  return location.hash
    .replace(/^#\/?/, '')
    .split('/')
    .filter(Boolean)
    .map((p) => decodeURIComponent(p));
}

function go(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

async function route() {
  const [first, second, third] = routeParts();
  if (first === 'invite' && second) {
    stop();
    renderInvite(root, { token: second, done: signedIn });
    return;
  }
  if (first === 'signed-out') {
    stop();
    renderSignedOut(root);
    return;
  }
  if (!api.hasSession()) {
    stop();
    if (first === 'register') renderRegister(root, { done: signedIn });
    else renderLogin(root, { done: signedIn, notice: loginNotice });
    loginNotice = null;
    return;
  }
  if (!shell) {
    starting ??= start().finally(() => (starting = null));
    if (!(await starting)) return;
  }
  if (first === 'admin' && isAdmin()) show(Admin, { page: second, id: third });
  else if (first === 'inbox') show(Inbox, { view: second, threadId: third });
  else if (first === 'profile') show(Profile, {});
  else location.replace('#/inbox/available');
}

function show(Page, params) {
  if (page instanceof Page) page.update(params);
  else {
    page?.destroy();
    page = new Page(shell.main, params);
  }
  for (const a of shell.nav.querySelectorAll('a')) a.classList.toggle('topnav__link--active', location.hash.startsWith(a.dataset.prefix));
}

function signedIn() {
  stop();
  go('#/inbox/available');
}

async function loadDirectory() {
  const [spaces, agents, teams, templates] = await Promise.all([api.get('/chat-spaces'), api.get('/agents'), api.get('/teams'), api.get('/templates'), loadLabels()]);
  state.spaces = spaces.items;
  state.agents = agents.items;
  state.teams = teams.items;
  state.templates = templates.items;
  emit('spaces');
  emit('agents');
  emit('templates');
}

/** Who am I, the directory, the socket, the shell. True when ready. */
async function start() {
  mount(root, h('p', { class: 'boot' }, t('common.loading')));
  try {
    const me = await api.get('/auth/me');
    state.me = me.agent;
    state.org = me.organization;
    state.features = me.features || {};
    await loadDirectory();
  } catch (e) {
    if (e.status === 401 || !api.hasSession()) return false;
    mount(root, h('div', { class: 'boot' }, h('p', { class: 'form-error' }, e.status === 0 ? t('error.network') : e.message), h('button', { class: 'btn', onclick: () => route() }, t('common.retry'))));
    return false;
  }
  buildShell();
  offs = [
    on('thread', scheduleTitle),
    on('spaces', () => {
      for (const s of state.spaces) runtime.socket?.joinSpace(s.id);
    }),
    on('presence', renderPresenceCount),
  ];
  runtime.socket = new AgentSocket({ spaces: () => state.spaces.map((s) => s.id), onFrame, onStatus });
  runtime.socket.start();
  // Keeps this device's push subscription known to the server.
  if (notify.permitted()) push.subscribe().catch(() => {});
  directoryTimer = setInterval(() => loadDirectory().catch(() => {}), 5 * 60_000);
  return true;
}

function stop() {
  page?.destroy();
  page = null;
  runtime.socket?.stop();
  runtime.socket = null;
  for (const off of offs) off();
  offs = [];
  clearInterval(directoryTimer);
  shell = null;
  reset();
  document.title = APP_NAME;
  delete document.body.dataset.socket;
}

async function logout() {
  await push.unsubscribe();
  await api.logout();
  stop();
  loginNotice = t('auth.loggedOut');
  go('#/login');
}

api.onSignedOut(() => {
  stop();
  go('#/signed-out');
});

// The shell.

function buildShell() {
  const nav = h(
    'nav',
    { class: 'topnav', 'aria-label': t('nav.main') },
    h('a', { href: '#/inbox/available', class: 'topnav__link', dataset: { prefix: '#/inbox' } }, t('nav.inbox')),
    isAdmin()
      ? [
          h('a', { href: '#/admin/spaces', class: 'topnav__link', dataset: { prefix: '#/admin/spaces' } }, t('nav.spaces')),
          h('a', { href: '#/admin/agents', class: 'topnav__link', dataset: { prefix: '#/admin/agents' } }, t('nav.agents')),
          h('a', { href: '#/admin/teams', class: 'topnav__link', dataset: { prefix: '#/admin/teams' } }, t('nav.teams')),
          h('a', { href: '#/admin/templates', class: 'topnav__link', dataset: { prefix: '#/admin/templates' } }, t('nav.templates')),
          h('a', { href: '#/admin/labels', class: 'topnav__link', dataset: { prefix: '#/admin/labels' } }, t('labels.title')),
          h('a', { href: '#/admin/integrations', class: 'topnav__link', dataset: { prefix: '#/admin/integrations' } }, t('nav.integrations')),
          h('a', { href: '#/admin/webhooks', class: 'topnav__link', dataset: { prefix: '#/admin/webhooks' } }, t('nav.webhooks')),
          h('a', { href: '#/admin/audit', class: 'topnav__link', dataset: { prefix: '#/admin/audit' } }, t('nav.audit')),
          h('a', { href: '#/admin/reports', class: 'topnav__link', dataset: { prefix: '#/admin/reports' } }, t('nav.reports')),
          state.features?.email ? h('a', { href: '#/admin/email', class: 'topnav__link', dataset: { prefix: '#/admin/email' } }, t('nav.email')) : null,
        ]
      : null,
  );
  const conn = h('span', { class: 'conn', role: 'status', title: '' });
  const presence = h('span', { class: 'topbar__presence', title: '' });
  const alerts = h('span', { class: 'alerts' });
  const main = h('main', { class: 'main', id: 'main' });
  shell = { nav, conn, presence, alerts, main };
  mount(
    root,
    h(
      'div',
      { class: 'shell' },
      h(
        'header',
        { class: 'topbar' },
        h('a', { class: 'brand', href: '#/inbox/available', title: state.org?.name || APP_NAME }, h('img', { src: '/app/icons/icon.svg', alt: '', width: 22, height: 22 }), h('span', { class: 'brand__name' }, state.org?.name || APP_NAME)),
        nav,
        h(
          'div',
          { class: 'topbar__right' },
          conn,
          presence,
          alerts,
          languagePicker(),
          h('a', { class: 'me', href: '#/profile', title: `${t('profile.title')} (${state.me?.email})` }, state.me?.displayName),
          h('button', { type: 'button', class: 'btn btn--ghost btn--sm', dataset: { action: 'logout' }, title: t('auth.logout'), onclick: logout }, icon('logout'), h('span', { class: 'hide-phone' }, t('auth.logout'))),
        ),
      ),
      main,
    ),
  );
  renderConn();
  renderPresenceCount();
  renderAlerts();
  scheduleTitle();
}

function renderConn() {
  if (!shell) return;
  const s = state.socket;
  shell.conn.className = `conn conn--${s}`;
  shell.conn.textContent = s === 'open' ? t('conn.live') : s === 'connecting' ? t('conn.connecting') : t('conn.offline');
}

function renderPresenceCount() {
  if (!shell) return;
  shell.presence.textContent = t('presence.count', { n: state.online.length });
  shell.presence.title = state.online.map((a) => a.displayName).join(', ');
}

function renderAlerts() {
  if (!shell) return;
  const sound = h('button', { type: 'button', class: 'btn btn--ghost btn--sm', 'aria-pressed': String(notify.soundOn()), dataset: { action: 'sound' }, title: t('notify.sound'), 'aria-label': t('notify.sound') }, icon(notify.soundOn() ? 'speaker' : 'speakerOff'));
  sound.addEventListener('click', () => {
    notify.setSound(!notify.soundOn());
    renderAlerts();
  });
  const ask = notify.canAsk()
    ? h(
        'button',
        {
          type: 'button',
          class: 'btn btn--sm',
          onclick: async () => {
            if ((await notify.askPermission()) === 'granted') await push.subscribe().catch(() => {});
            renderAlerts();
          },
        },
        h('span', { class: 'hide-phone' }, t('notify.enable')),
        h('span', { class: 'show-phone' }, t('notify.enableShort')),
      )
    : notify.blocked()
      ? h('span', { class: 'alerts__blocked', role: 'note', title: t('notify.blockedHint') }, t('notify.blocked'))
      : null;
  mount(shell.alerts, sound, prefsMenu(), ask);
}

let titleFrame = 0;
function scheduleTitle() {
  if (titleFrame) return;
  titleFrame = requestAnimationFrame(() => {
    titleFrame = 0;
    notify.setTitle(totalUnread(), APP_NAME);
  });
}

// Socket frames into the store.

function onStatus(status, { reconnected, frame }) {
  state.socket = status;
  document.body.dataset.socket = status;
  if (status === 'open') {
    document.body.dataset.socketOpens = String(runtime.socket?.opens || 0);
    if (frame?.agent) state.me = { ...state.me, ...frame.agent };
    if (frame?.agentsOnline) {
      state.online = frame.agentsOnline;
      emit('presence');
    }
    if (reconnected) {
      // Resume replays messages; lists, claims and closes are fetched again.
      loadDirectory()
        .catch(() => {})
        .finally(() => emit('resync'));
    }
  }
  renderConn();
}

function openThreadId() {
  const [first, , third] = routeParts();
  return first === 'inbox' ? third : null;
}

function alertAbout(thread, title, text) {
  if (thread.id === openThreadId() && notify.watching()) return;
  notify.ding();
  const view = inView('mine', thread) ? 'mine' : 'available';
  notify.desktop(title, `${visitorLabel(thread)}: ${text}`, `#/inbox/${view}/${thread.id}`, `thread-${thread.id}`);
}

function onFrame(f) {
  switch (f.type) {
    case 'thread:new': {
      const th = upsertThread(f.thread);
      if (th && inView('available', th)) alertAbout(th, t('notify.newThread'), th.lastMessage?.preview || '');
      break;
    }
    case 'thread:updated':
      upsertThread(f.thread);
      break;
    case 'thread:removed':
      // Routed to a team this agent is not in: out of its view.
      removeThread(f.threadId);
      break;
    case 'labels:changed':
      loadLabels();
      break;
    case 'access:changed':
      // Spaces or teams changed: spaces and threads may have come or gone.
      if (f.agent) state.me = { ...state.me, ...f.agent };
      loadDirectory()
        .catch(() => {})
        .finally(() => emit('resync'));
      break;
    case 'visitor:message': {
      const th = upsertThread(f.thread);
      emit('message', f.message);
      if (th && (inView('mine', th) || inView('available', th))) alertAbout(th, t('notify.newMessage'), f.message.content);
      break;
    }
    case 'agent:message':
      if (f.thread) upsertThread(f.thread);
      emit('message', f.message);
      break;
    case 'message:ack':
      emit('message', f.message);
      break;
    case 'message:updated':
      // An edit or delete of the newest message changes the list's preview.
      if (f.thread) upsertThread(f.thread);
      emit('message:updated', f.message);
      break;
    case 'visitor:typing':
    case 'agent:typing':
      emit('typing', f);
      break;
    case 'messages:read':
      markerMoved(f);
      break;
    case 'agents:presence':
      state.online = f.online || [];
      for (const a of state.agents) a.isOnline = state.online.some((o) => o.id === a.id);
      emit('presence');
      break;
    case 'visitor:presence':
      emit('visitor:presence', f);
      break;
    case 'resync':
      emit('resync');
      break;
    case 'error':
      console.warn('socket error', f.code, f.message);
      break;
    default:
      break;
  }
}

function markerMoved(f) {
  const th = state.threads.get(f.threadId);
  if (!th) return;
  const at = new Date().toISOString();
  if (f.reader === 'visitor') {
    upsertThread({ ...th, visitorRead: { ...(th.visitorRead || {}), upTo: f.upTo, at } });
  } else if (f.reader === state.me?.id && th.lastMessage && f.upTo >= th.lastMessage.id) {
    // Read in another tab up to the newest message: nothing is unread.
    upsertThread({ ...th, agentReads: { ...(th.agentReads || {}), [f.reader]: { upTo: f.upTo, seen: th.visitorMessageCount, at } } });
  }
}

// Keyboard: j/k next/previous thread, c claim, e close, l labels, / templates.

document.addEventListener('keydown', (e) => {
  if (e.ctrlKey || e.metaKey || e.altKey || isTyping(e) || !(page instanceof Inbox)) return;
  const conv = page.conversation;
  switch (e.key) {
    case 'j':
      page.move(1);
      break;
    case 'k':
      page.move(-1);
      break;
    case 'c':
      conv?.claim();
      break;
    case 'e':
      conv?.close();
      break;
    case 'l':
      conv?.tags.open();
      break;
    case '/':
      if (conv) conv.templates();
      else page.search.focus();
      break;
    default:
      return;
  }
  e.preventDefault();
});

window.addEventListener('hashchange', route);

if ('serviceWorker' in navigator) {
  navigator.serviceWorker.register('/app/sw.js', { scope: '/app/' }).catch(() => {});
  // A clicked notification opens its conversation in this window.
  navigator.serviceWorker.addEventListener('message', (e) => {
    if (e.data?.type !== 'open' || typeof e.data.url !== 'string') return;
    const url = new URL(e.data.url, location.href);
    if (url.origin === location.origin && url.pathname === '/app/' && url.hash.startsWith('#/')) location.hash = url.hash;
  });
}

route();
