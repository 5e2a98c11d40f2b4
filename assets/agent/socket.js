// The agent socket (/ws/agent): authenticates with the access token as a
// subprotocol, joins the organization's spaces, and comes back by itself
// after a network drop, a server restart or a laptop's sleep — with a
// jittered backoff, `resume {after}` for the messages it missed, and a
// "reconnected" status so the app refetches what resume cannot replay
// (claims, closes, new threads).

import { freshToken, get as apiGet, refresh } from './api.js';

const HEARTBEAT_MS = 20_000;
const DEAD_AFTER_MS = 50_000;
const MAX_BACKOFF_MS = 30_000;

export class AgentSocket {
  /**
   * spaces(): ids to join; onFrame(frame); onStatus(status, {reconnected})
   * where status is 'connecting' | 'open' | 'closed'.
   */
  constructor({ spaces, onFrame, onStatus }) {
    this.spaces = spaces;
    this.onFrame = onFrame;
    this.onStatus = onStatus;
    this.ws = null;
    this.ready = false;
    this.stopped = true;
    this.attempts = 0;
    this.failures = 0;
    this.opens = 0;
    this.lastMessageId = null;
    this.lastHeard = 0;
    this.lastSent = 0;
    this.lastTick = Date.now();
    this.retryTimer = 0;
    this.watchdog = 0;
    this.wake = () => this.nudge();
  }

  start() {
    if (!this.stopped) return;
    this.stopped = false;
    this.watchdog = setInterval(() => this.tick(), 5_000);
    window.addEventListener('online', this.wake);
    document.addEventListener('visibilitychange', this.wake);
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearInterval(this.watchdog);
    clearTimeout(this.retryTimer);
    window.removeEventListener('online', this.wake);
    document.removeEventListener('visibilitychange', this.wake);
    this.drop(1000);
  }

  get isOpen() {
    return !!this.ws && this.ready;
  }

  send(frame) {
    if (!this.isOpen) return false;
    this.ws.send(JSON.stringify(frame));
    this.lastSent = Date.now();
    return true;
  }

  joinSpace(id) {
    this.send({ type: 'agent:join_space', chatSpaceId: id });
  }

  async connect() {
    if (this.stopped || this.ws) return;
    clearTimeout(this.retryTimer);
    this.onStatus('connecting', {});
    let token;
    try {
      token = await freshToken();
    } catch (e) {
      if (e.status !== 401) this.retry();
      return;
    }
    if (this.stopped || this.ws) return;
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    let ws;
    try {
      ws = new WebSocket(`${scheme}://${location.host}/ws/agent`, ['bearer', token]);
    } catch {
      this.retry();
      return;
    }
    this.ws = ws;
    this.ready = false;
    ws.onmessage = (ev) => this.receive(ws, ev.data);
    ws.onclose = (ev) => this.closed(ws, ev);
  }

  receive(ws, data) {
    if (ws !== this.ws) return;
    this.lastHeard = Date.now();
    let frame;
    try {
      frame = JSON.parse(data);
    } catch {
      return;
    }
    if (frame.type === 'ready') {
      this.ready = true;
      this.attempts = 0;
      this.failures = 0;
      for (const id of this.spaces()) this.joinSpace(id);
      if (this.lastMessageId) this.send({ type: 'resume', after: this.lastMessageId });
      const reconnected = this.opens > 0;
      this.opens += 1;
      this.onStatus('open', { reconnected, frame });
      return;
    }
    if (frame.type === 'heartbeat') return;
    const id = frame.message?.id;
    if (id && ['visitor:message', 'agent:message', 'message:ack'].includes(frame.type)) {
      // UUIDv7 strings sort in creation order.
      if (!this.lastMessageId || id > this.lastMessageId) this.lastMessageId = id;
    }
    this.onFrame(frame);
  }

  closed(ws, ev) {
    if (ws !== this.ws) return;
    const wasReady = this.ready;
    this.ws = null;
    this.ready = false;
    this.onStatus('closed', {});
    if (this.stopped) return;
    if (ev.code === 4001 || ev.code === 4401) {
      // Revoked or refused: a refresh either saves the session or ends it.
      refresh().then(
        () => this.connect(),
        (e) => {
          if (e.status !== 401) this.retry();
        },
      );
      return;
    }
    if (!wasReady) {
      this.failures += 1;
      // A refused upgrade looks like any network error; ask the API
      // whether the session still stands (it signs out if not).
      if (this.failures % 3 === 0) apiGet('/auth/me').catch(() => {});
    }
    this.retry();
  }

  retry() {
    if (this.stopped) return;
    clearTimeout(this.retryTimer);
    const base = Math.min(MAX_BACKOFF_MS, 500 * 2 ** this.attempts);
    const delay = base / 2 + Math.random() * (base / 2);
    this.attempts += 1;
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  /** Forgets the current socket without waiting for a close handshake. */
  drop(code) {
    const ws = this.ws;
    this.ws = null;
    this.ready = false;
    if (!ws) return;
    ws.onclose = null;
    ws.onmessage = null;
    try {
      ws.close(code);
    } catch {
      // Already closing.
    }
  }

  /** Back online or visible again: reconnect now instead of after the backoff. */
  nudge() {
    if (this.stopped || document.visibilityState === 'hidden') return;
    if (this.isOpen) {
      this.send({ type: 'heartbeat' });
      return;
    }
    if (!this.ws) {
      this.attempts = 0;
      this.connect();
    }
  }

  tick() {
    const now = Date.now();
    // A long gap between ticks means the machine slept: the socket is
    // most likely dead even if the browser has not noticed yet.
    const slept = now - this.lastTick > 20_000;
    this.lastTick = now;
    if (!this.isOpen) return;
    if (slept || now - this.lastHeard > DEAD_AFTER_MS) {
      this.drop(4000);
      this.onStatus('closed', {});
      this.attempts = 0;
      this.connect();
    } else if (now - this.lastSent > HEARTBEAT_MS) {
      this.send({ type: 'heartbeat' });
    }
  }
}
