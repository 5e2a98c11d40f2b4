// Web Push: once the agent allowed notifications, this device subscribes
// through the service worker with the server's VAPID key and tells the
// server, so notifications arrive with the app closed (phones too). At
// logout the device unsubscribes.

import { api, get, post } from './api.js';
import { locale } from './i18n.js';

export function supported() {
  return 'serviceWorker' in navigator && 'PushManager' in window && 'Notification' in window;
}

/** 'on', 'off', 'blocked' or 'unsupported', for this device. */
export async function status() {
  if (!supported()) return 'unsupported';
  if (Notification.permission === 'denied') return 'blocked';
  const reg = await navigator.serviceWorker.getRegistration('/app/');
  const sub = await reg?.pushManager.getSubscription();
  return sub && Notification.permission === 'granted' ? 'on' : 'off';
}

function keyBytes(b64) {
  const s = b64.replace(/-/g, '+').replace(/_/g, '/');
  const bin = atob(s + '='.repeat((4 - (s.length % 4)) % 4));
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

function sameKey(a, b) {
  if (!a) return false;
  const x = new Uint8Array(a);
  return x.length === b.length && x.every((v, i) => v === b[i]);
}

/** Subscribes this device (again: the server keeps one per device). */
export async function subscribe() {
  if (!supported() || Notification.permission !== 'granted') return false;
  const reg = await navigator.serviceWorker.ready;
  const { publicKey } = await get('/push/vapid-key');
  const key = keyBytes(publicKey);
  let sub = await reg.pushManager.getSubscription();
  // A subscription made with another server key cannot be used.
  if (sub && !sameKey(sub.options?.applicationServerKey, key)) {
    await sub.unsubscribe();
    sub = null;
  }
  sub ||= await reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key });
  await post('/push/subscriptions', { ...sub.toJSON(), locale: locale() });
  return true;
}

/** Forgets this device, on the server (while still signed in) and in the browser. */
export async function unsubscribe() {
  if (!supported()) return;
  try {
    const reg = await navigator.serviceWorker.getRegistration('/app/');
    const sub = await reg?.pushManager.getSubscription();
    if (!sub) return;
    await api('DELETE', '/push/subscriptions', { endpoint: sub.endpoint }).catch(() => {});
    await sub.unsubscribe();
  } catch {
    // The server forgets every device at logout anyway.
  }
}
