// Telling the agent something happened while they look elsewhere: a short
// sound (synthesised, no audio file), a system notification once they
// allowed it, and the unread count in the tab title. With the app closed,
// Web Push (push.js, sw.js) does the telling.

const SOUND_KEY = 'mychat.sound';
let audio = null;
let lastDing = 0;

export function soundOn() {
  return localStorage.getItem(SOUND_KEY) !== 'off';
}

export function setSound(on) {
  localStorage.setItem(SOUND_KEY, on ? 'on' : 'off');
}

// Browsers only let a page make sound after the user interacted with it.
function unlock() {
  if (audio) return;
  const Ctx = window.AudioContext || window.webkitAudioContext;
  if (Ctx) audio = new Ctx();
}
window.addEventListener('pointerdown', unlock, { once: true, capture: true });
window.addEventListener('keydown', unlock, { once: true, capture: true });

export function ding() {
  const now = Date.now();
  if (!soundOn() || !audio || now - lastDing < 1000) return;
  lastDing = now;
  if (audio.state === 'suspended') audio.resume().catch(() => {});
  const t0 = audio.currentTime;
  for (const [freq, at] of [
    [880, 0],
    [1320, 0.12],
  ]) {
    const osc = audio.createOscillator();
    const gain = audio.createGain();
    osc.frequency.value = freq;
    gain.gain.setValueAtTime(0.0001, t0 + at);
    gain.gain.exponentialRampToValueAtTime(0.15, t0 + at + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, t0 + at + 0.25);
    osc.connect(gain).connect(audio.destination);
    osc.start(t0 + at);
    osc.stop(t0 + at + 0.3);
  }
}

export function canAsk() {
  return 'Notification' in window && Notification.permission === 'default';
}

/** The browser (or its user) refused notifications for this site. */
export function blocked() {
  return 'Notification' in window && Notification.permission === 'denied';
}

export function permitted() {
  return 'Notification' in window && Notification.permission === 'granted';
}

export async function askPermission() {
  if (!('Notification' in window)) return 'denied';
  return Notification.requestPermission();
}

/** Whether the agent is looking at this page right now. */
export function watching() {
  return document.visibilityState === 'visible' && document.hasFocus();
}

/**
 * A system notification (text only); clicking it opens `hash`. Shown by the
 * service worker where there is one (Android allows no other way); `tag`
 * is the one Web Push uses, so the two never show the same thing twice.
 */
export async function desktop(title, body, hash, tag) {
  if (!permitted() || watching()) return;
  const options = { body, tag: tag || hash, icon: '/app/icons/icon-192.png', data: { url: `/app/${hash}` } };
  try {
    const reg = await navigator.serviceWorker?.getRegistration('/app/');
    if (reg) {
      await reg.showNotification(title, options);
      return;
    }
  } catch {
    // Fall back to a page notification.
  }
  try {
    const n = new Notification(title, options);
    n.onclick = () => {
      window.focus();
      location.hash = hash;
      n.close();
    };
  } catch {
    // Some platforms only allow notifications from a service worker.
  }
}

export function setTitle(unread, base) {
  document.title = unread > 0 ? `(${unread}) ${base}` : base;
}
