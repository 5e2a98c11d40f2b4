// The REST client: JSON in and out, the session in localStorage, access
// tokens refreshed in the background and once more on a 401, and one
// "signed out" signal when the session cannot be saved.

const KEY = 'mychat.session';
const BASE = '/api/v1';
// Refresh this long before the access token expires.
const EARLY_MS = 60_000;

let session = load();
let refreshing = null;
let timer = 0;
const signedOutListeners = new Set();
const sessionListeners = new Set();

export class ApiError extends Error {
  constructor(status, code, message, body, requestId = '') {
    super(message || code);
    this.status = status;
    this.code = code;
    this.body = body;
    // The server's x-request-id: what a user quotes to support.
    this.requestId = requestId;
  }
}

/** An error's text for a toast, with the request id to quote when there is one. */
export function errorText(e, fallback) {
  const text = (typeof e === 'string' ? e : e?.message) || fallback;
  return e?.requestId ? `${text} (${e.requestId})` : text;
}

function load() {
  try {
    const s = JSON.parse(localStorage.getItem(KEY) || 'null');
    if (!s || !s.accessToken || !s.refreshToken) return null;
    // A session put there by hand (or by an older version) has no expiry.
    if (!Number.isFinite(s.expiresAt)) s.expiresAt = Date.now() + 5 * 60_000;
    return s;
  } catch {
    return null;
  }
}

function save() {
  if (session) localStorage.setItem(KEY, JSON.stringify(session));
  else localStorage.removeItem(KEY);
}

export function getSession() {
  return session;
}

export function hasSession() {
  return !!session;
}

/** Stores a login, register, refresh or accept-invite answer. */
export function setSession(body) {
  session = {
    accessToken: body.accessToken,
    refreshToken: body.refreshToken,
    expiresAt: Date.now() + (body.expiresIn || 900) * 1000,
    agentId: body.agent?.id ?? session?.agentId,
  };
  save();
  schedule();
  for (const fn of sessionListeners) fn(session);
}

export function onSignedOut(fn) {
  signedOutListeners.add(fn);
}

export function onSession(fn) {
  sessionListeners.add(fn);
}

function endSession(reason) {
  const had = !!session;
  session = null;
  save();
  clearTimeout(timer);
  if (had) for (const fn of signedOutListeners) fn(reason);
}

/** Logs out on the server (best effort) and forgets the session. */
export async function logout() {
  const s = session;
  session = null;
  save();
  clearTimeout(timer);
  if (!s) return;
  try {
    await fetch(`${BASE}/auth/logout`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${s.accessToken}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ refreshToken: s.refreshToken }),
    });
  } catch {
    // Offline: the refresh token simply expires.
  }
}

function schedule() {
  clearTimeout(timer);
  if (!session) return;
  const wait = Math.max(5_000, session.expiresAt - Date.now() - EARLY_MS);
  timer = setTimeout(() => refresh().catch(() => {}), wait);
}

/** Rotates the refresh token. One refresh at a time, also across tabs. */
export function refresh() {
  if (!refreshing) {
    refreshing = withLock(doRefresh).finally(() => {
      refreshing = null;
    });
  }
  return refreshing;
}

async function withLock(fn) {
  if (navigator.locks?.request) return navigator.locks.request('mychat-refresh', fn);
  return fn();
}

async function doRefresh() {
  // A password change ends the old tokens and answers with new ones: a
  // refresh meanwhile (the socket is closed at once) waits for those, and
  // never presents the old refresh token.
  if (renewing) {
    const before = session;
    await renewing.catch(() => {});
    if (session && session !== before) return session;
  }
  const mine = session;
  // Another tab may have rotated the token while this one waited.
  const stored = load();
  if (stored && mine && stored.refreshToken !== mine.refreshToken && stored.expiresAt - Date.now() > EARLY_MS) {
    session = stored;
    schedule();
    return session;
  }
  const current = stored || mine;
  if (!current) throw new ApiError(401, 'unauthorized', 'signed out');
  let resp;
  try {
    resp = await fetch(`${BASE}/auth/refresh`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ refreshToken: current.refreshToken }),
    });
  } catch {
    // Offline: try again soon; the session is not over.
    clearTimeout(timer);
    timer = setTimeout(() => refresh().catch(() => {}), 15_000);
    throw new ApiError(0, 'network', 'network error');
  }
  if (resp.status === 401 || resp.status === 400 || resp.status === 403) {
    endSession('expired');
    throw new ApiError(401, 'unauthorized', 'session ended');
  }
  if (!resp.ok) throw new ApiError(resp.status, 'refresh_failed', 'refresh failed');
  setSession(await resp.json());
  return session;
}

let renewing = null;
/** POSTs a request that answers with a new session (a password change) and keeps it. */
export function renewSession(path, body) {
  renewing = api('POST', path, body)
    .then((s) => setSession(s))
    .finally(() => {
      renewing = null;
    });
  return renewing;
}

/** An access token that is valid for at least a little while. */
export async function freshToken() {
  if (!session) throw new ApiError(401, 'unauthorized', 'signed out');
  if (session.expiresAt - Date.now() < EARLY_MS) await refresh();
  return session.accessToken;
}

// Another tab logged in, refreshed or logged out.
window.addEventListener('storage', (e) => {
  if (e.key !== KEY) return;
  const next = load();
  if (!next && session) endSession('elsewhere');
  else if (next) {
    session = next;
    schedule();
  }
});

// After sleep the timer may not have fired in time.
document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'visible' && session && session.expiresAt - Date.now() < EARLY_MS) {
    refresh().catch(() => {});
  }
});

schedule();

/**
 * One authenticated request: a 401 refreshes the session once and
 * retries. Returns the Response; throws ApiError when offline.
 */
async function send(method, path, { body, headers = {}, auth = true, retry = true } = {}) {
  const h = { ...headers };
  if (auth) {
    if (!session) throw new ApiError(401, 'unauthorized', 'signed out');
    h.Authorization = `Bearer ${session.accessToken}`;
  }
  let resp;
  try {
    resp = await fetch(BASE + path, { method, headers: h, body });
  } catch {
    throw new ApiError(0, 'network', 'network error');
  }
  if (resp.status === 401 && auth && retry && session) {
    await refresh();
    return send(method, path, { body, headers, auth, retry: false });
  }
  if (resp.status === 401 && auth) endSession('expired');
  return resp;
}

async function failure(resp) {
  let data = null;
  try {
    data = await resp.json();
  } catch {
    data = null;
  }
  const err = data?.error || {};
  const requestId = resp.headers.get('x-request-id') || '';
  return new ApiError(resp.status, err.code || `http_${resp.status}`, err.message || resp.statusText, data, requestId);
}

/** Calls the API. Throws ApiError with the server's code and message. */
export async function api(method, path, body, { auth = true } = {}) {
  const resp = await send(method, path, {
    auth,
    body: body === undefined ? undefined : JSON.stringify(body),
    headers: body === undefined ? {} : { 'Content-Type': 'application/json' },
  });
  if (!resp.ok) throw await failure(resp);
  if (resp.status === 204) return null;
  const text = await resp.text();
  return text ? JSON.parse(text) : null;
}

/** A guarded file (an attachment) as a Blob. */
export async function blob(path) {
  const resp = await send('GET', path);
  if (!resp.ok) throw await failure(resp);
  return resp.blob();
}

/** Uploads one file as multipart/form-data in the field `file`. */
export async function upload(path, file) {
  const form = new FormData();
  form.append('file', file, file.name || 'pasted-file');
  const resp = await send('POST', path, { body: form });
  if (!resp.ok) throw await failure(resp);
  return resp.json();
}

/** Sends one file as the request body (`PUT`), typed by the browser. */
export async function putFile(path, file) {
  const resp = await send('PUT', path, { body: file, headers: { 'Content-Type': file.type || 'application/octet-stream' } });
  if (!resp.ok) throw await failure(resp);
  return resp.json();
}

export const get = (path) => api('GET', path);
export const post = (path, body = {}) => api('POST', path, body);
export const patch = (path, body = {}) => api('PATCH', path, body);
export const del = (path) => api('DELETE', path);

/** Builds a query string from the defined, non-empty values. */
export function qs(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v != null && v !== '') q.set(k, v);
  const s = q.toString();
  return s ? `?${s}` : '';
}
