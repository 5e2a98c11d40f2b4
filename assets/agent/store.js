// What the app knows: who is signed in, the organization's spaces, agents,
// teams and templates, every thread it has seen, and who is online. Views
// read from here and listen for changes; the socket and REST loads write.

export const state = {
  me: null,
  org: null,
  /** What the appliance can do (GET /auth/me). */
  features: {},
  spaces: [],
  agents: [],
  teams: [],
  templates: [],
  /** The organization's labels: [{id, name, color}] */
  labels: [],
  /** id -> thread (the REST/socket thread object) */
  threads: new Map(),
  /** [{id, displayName}] */
  online: [],
  /** 'connecting' | 'open' | 'closed' */
  socket: 'closed',
};

/** The live socket, for views that send frames (typing). */
export const runtime = { socket: null };

const listeners = new Map();

/** Subscribes; returns the unsubscribe function. */
export function on(event, fn) {
  if (!listeners.has(event)) listeners.set(event, new Set());
  listeners.get(event).add(fn);
  return () => listeners.get(event)?.delete(fn);
}

export function emit(event, data) {
  for (const fn of [...(listeners.get(event) || [])]) {
    try {
      fn(data);
    } catch (e) {
      console.error(e);
    }
  }
}

export function isAdmin() {
  return state.me?.role === 'admin' || state.me?.role === 'owner';
}

export function reset() {
  state.me = null;
  state.org = null;
  state.features = {};
  state.spaces = [];
  state.agents = [];
  state.teams = [];
  state.templates = [];
  state.labels = [];
  state.threads.clear();
  state.online = [];
  state.socket = 'closed';
  seq = 0;
  touched.clear();
}

// Socket updates win over REST pages fetched before them.
let seq = 0;
const touched = new Map();

/** A mark to pass to upsertThread when a REST load starts. */
export function mark() {
  return seq;
}

/**
 * Stores a thread. With `since` (a REST load's mark), a thread the socket
 * updated after that mark is left alone: the page is older than it.
 */
export function upsertThread(thread, { since } = {}) {
  if (!thread?.id) return null;
  if (since !== undefined && (touched.get(thread.id) || 0) > since) return state.threads.get(thread.id);
  const old = state.threads.get(thread.id);
  // Answers and frames may arrive out of commit order (a slow read marker
  // answer after the socket's claim): a snapshot older than the one held
  // adds only its newer read markers.
  if (old && stamp(thread.updatedAt) < stamp(old.updatedAt)) thread = { ...old, ...newerReads(old, thread) };
  const merged = { ...old, ...thread };
  if (!thread.assignedAgentId) merged.assignedAgentName = thread.assignedAgentName ?? null;
  state.threads.set(thread.id, merged);
  if (since === undefined) touched.set(thread.id, ++seq);
  emit('thread', merged);
  return merged;
}

/** An RFC 3339 time comparable as a string (fractions padded to nanoseconds). */
function stamp(at) {
  return (at || '').replace(/(\.\d+)?Z$/, (_, frac) => `${(frac || '.').padEnd(10, '0')}Z`);
}

function newerReads(old, thread) {
  const agentReads = { ...old.agentReads };
  for (const [id, r] of Object.entries(thread.agentReads || {})) if (!agentReads[id] || agentReads[id].upTo < r.upTo) agentReads[id] = r;
  const visitorRead = (thread.visitorRead?.upTo || '') > (old.visitorRead?.upTo || '') ? thread.visitorRead : old.visitorRead;
  return { agentReads, visitorRead };
}

export function removeThread(id) {
  if (state.threads.delete(id)) emit('thread', { id, removed: true });
}

/** Visitor messages the signed-in agent has not read. */
export function unreadOf(thread) {
  const seen = thread.agentReads?.[state.me?.id]?.seen || 0;
  return Math.max(0, (thread.visitorMessageCount || 0) - seen);
}

const OPEN = ['unassigned', 'active', 'pending'];

export function isOpen(thread) {
  return OPEN.includes(thread.status);
}

function availableToMe(thread) {
  return !thread.teamId || isAdmin() || (state.me?.teamIds || []).includes(thread.teamId);
}

export const VIEWS = ['available', 'mine', 'all', 'closed'];

/** Whether a thread belongs in one of the four lists. */
export function inView(view, thread) {
  switch (view) {
    case 'available':
      return thread.status === 'unassigned' && availableToMe(thread);
    case 'mine':
      return thread.assignedAgentId === state.me?.id && (thread.status === 'active' || thread.status === 'pending');
    case 'all':
      return isOpen(thread);
    case 'closed':
      return !isOpen(thread);
    default:
      return false;
  }
}

/** Unread visitor messages in the threads that are the agent's business. */
export function totalUnread() {
  let n = 0;
  for (const t of state.threads.values()) if (inView('mine', t) || inView('available', t)) n += unreadOf(t);
  return n;
}

export function agentName(id) {
  return state.agents.find((a) => a.id === id)?.displayName || state.online.find((a) => a.id === id)?.displayName || null;
}

export function spaceName(id) {
  return state.spaces.find((s) => s.id === id)?.name || '';
}

/** Newest activity first. */
export function byActivity(a, b) {
  return (b.lastActivityAt || '').localeCompare(a.lastActivityAt || '') || b.id.localeCompare(a.id);
}
