// The agent app's service worker: keeps the app shell (HTML, CSS, modules,
// icons) available offline so the app starts and can show its own
// "reconnecting" state. Network first, so a deploy is picked up at once.
// API calls and sockets never pass through here and are never cached.
// It also shows Web Push notifications and opens their conversation.

const CACHE = 'mychat-shell-v2';
const SHELL = [
  '/app/',
  '/app/app.css',
  '/app/desk.css',
  '/app/main.js',
  '/app/api.js',
  '/app/dom.js',
  '/app/i18n.js',
  '/app/i18n-desk.js',
  '/app/notify.js',
  '/app/push.js',
  '/app/socket.js',
  '/app/store.js',
  '/app/views/admin.js',
  '/app/views/admin-agents.js',
  '/app/views/admin-audit.js',
  '/app/views/admin-email.js',
  '/app/views/admin-integrations.js',
  '/app/views/admin-labels.js',
  '/app/views/admin-spaces.js',
  '/app/views/admin-teams.js',
  '/app/views/admin-templates.js',
  '/app/views/admin-webhooks.js',
  '/app/views/assignment.js',
  '/app/views/attach-later.js',
  '/app/views/attachments.js',
  '/app/views/composer.js',
  '/app/views/contact.js',
  '/app/views/conversation.js',
  '/app/views/inbox.js',
  '/app/views/labels.js',
  '/app/views/login.js',
  '/app/views/secret-once.js',
  '/app/views/status-line.js',
  '/app/views/presence.js',
  '/app/views/prefs.js',
  '/app/views/rating.js',
  '/app/views/visitor.js',
  '/app/views/widget-preview.js',
  '/app/manifest.webmanifest',
  '/app/icons/icon.svg',
  '/app/icons/icon-192.png',
];

self.addEventListener('install', (event) => {
  event.waitUntil(
    caches
      .open(CACHE)
      .then((cache) => cache.addAll(SHELL))
      .then(() => self.skipWaiting()),
  );
});

self.addEventListener('activate', (event) => {
  event.waitUntil(
    caches
      .keys()
      .then((keys) => Promise.all(keys.filter((k) => k !== CACHE).map((k) => caches.delete(k))))
      .then(() => self.clients.claim()),
  );
});

function isShell(url) {
  return url.origin === self.location.origin && url.pathname.startsWith('/app/') && url.pathname !== '/app/sw.js';
}

self.addEventListener('fetch', (event) => {
  const request = event.request;
  if (request.method !== 'GET') return;
  const url = new URL(request.url);
  // Only the shell: /api/ and /ws/ are never touched.
  if (!isShell(url)) return;
  event.respondWith(
    fetch(request)
      .then((response) => {
        if (response.ok && response.type === 'basic') {
          const copy = response.clone();
          caches.open(CACHE).then((cache) => cache.put(request.mode === 'navigate' ? '/app/' : request, copy));
        }
        return response;
      })
      .catch(async () => (await caches.match(request, { ignoreSearch: true })) || (request.mode === 'navigate' ? caches.match('/app/') : Response.error())),
  );
});

// Web Push: the payload is {title, body, url, tag}, shown as text. A window
// the agent is looking at already shows it live, so it is not repeated.
self.addEventListener('push', (event) => {
  let data = {};
  try {
    data = event.data ? event.data.json() : {};
  } catch {
    data = { body: event.data ? event.data.text() : '' };
  }
  event.waitUntil(
    (async () => {
      const windows = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
      if (windows.some((w) => w.focused && w.visibilityState === 'visible' && appUrl(w.url))) return;
      await self.registration.showNotification(String(data.title || 'My-Chat'), {
        body: String(data.body || ''),
        tag: data.tag ? String(data.tag) : undefined,
        renotify: !!data.tag,
        icon: '/app/icons/icon-192.png',
        data: { url: appUrl(data.url) || '/app/' },
      });
    })(),
  );
});

/** `url` when it is a page of this app (nothing else is ever opened). */
function appUrl(url) {
  try {
    const u = new URL(url, self.location.origin);
    return u.origin === self.location.origin && u.pathname.startsWith('/app/') ? u.href : null;
  } catch {
    return null;
  }
}

// A click focuses an open app window and shows the conversation there, or
// opens the app on it.
self.addEventListener('notificationclick', (event) => {
  event.notification.close();
  const url = appUrl(event.notification.data?.url) || new URL('/app/', self.location.origin).href;
  event.waitUntil(
    (async () => {
      const windows = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
      const app = windows.find((w) => appUrl(w.url));
      if (!app) {
        await self.clients.openWindow(url);
        return;
      }
      await app.focus();
      app.postMessage({ type: 'open', url });
    })(),
  );
});
