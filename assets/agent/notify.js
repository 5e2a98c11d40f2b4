// Telling the agent something happened while they look elsewhere: a short
// sound (synthesised, no audio file), a browser Notification once they
// allowed it, and the unread count in the tab title.

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

/** A system notification (text only); clicking it opens `hash`. */
export function desktop(title, body, hash) {
  if (!permitted() || watching()) return;
  try {
    const n = new Notification(title, { body, tag: hash, icon: '/app/icons/icon-192.png' });
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
