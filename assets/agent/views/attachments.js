// Files in messages: thumbnails for images, chips for the rest, a viewer
// for full images. Attachment downloads need the access token, so they
// are fetched and shown through blob: URLs (which the CSP allows).

import { blob } from '../api.js';
import { h, mount } from '../dom.js';
import { t } from '../i18n.js';

const urls = new Map();

async function objectUrl(path) {
  if (!urls.has(path)) {
    urls.set(
      path,
      blob(path).then(
        (b) => URL.createObjectURL(b),
        (e) => {
          urls.delete(path);
          throw e;
        },
      ),
    );
  }
  return urls.get(path);
}

export function formatSize(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${Math.round(bytes / 102.4) / 10} KB`;
  return `${Math.round(bytes / (1024 * 104.8576)) / 10} MB`;
}

function isImage(a) {
  return /^image\/(png|jpeg|gif|webp)$/.test(a.mimeType);
}

async function download(a) {
  const url = await objectUrl(`/attachments/${a.id}`);
  const link = h('a', { href: url, download: a.name, class: 'offscreen' });
  document.body.append(link);
  link.click();
  link.remove();
}

async function view(a) {
  const img = h('img', { class: 'viewer__img', alt: a.name });
  const dialog = h(
    'dialog',
    { class: 'viewer' },
    h(
      'div',
      { class: 'viewer__bar' },
      h('span', { class: 'viewer__name' }, a.name),
      h('button', { type: 'button', class: 'btn btn--sm', onclick: () => download(a) }, t('files.download')),
      h('button', { type: 'button', class: 'btn btn--sm', onclick: () => dialog.close() }, t('common.close')),
    ),
    img,
  );
  dialog.addEventListener('close', () => dialog.remove());
  dialog.addEventListener('click', (e) => {
    if (e.target === dialog) dialog.close();
  });
  document.body.append(dialog);
  dialog.showModal();
  try {
    img.src = await objectUrl(`/attachments/${a.id}`);
  } catch {
    mount(dialog, h('p', { class: 'form-error pad' }, t('files.unavailable')));
  }
}

/** The files of one message. */
export function attachmentList(attachments) {
  if (!attachments?.length) return null;
  return h(
    'div',
    { class: 'files' },
    attachments.map((a) => {
      if (a.expired) return h('span', { class: 'file file--gone', title: a.name }, `${a.name} — ${t('files.expired')}`);
      if (isImage(a) && a.thumbnail) {
        const img = h('img', { class: 'file__thumb', alt: a.name, width: 120, height: 90 });
        objectUrl(`/attachments/${a.id}/thumbnail`).then(
          (url) => (img.src = url),
          () => img.replaceWith(h('span', { class: 'file file--gone' }, a.name)),
        );
        return h('button', { type: 'button', class: 'file file--image', title: a.name, onclick: () => view(a) }, img);
      }
      return h(
        'button',
        { type: 'button', class: 'file', title: t('files.download'), onclick: () => download(a).catch(() => {}) },
        h('span', { class: 'file__name' }, a.name),
        h('small', { class: 'muted' }, formatSize(a.sizeBytes)),
      );
    }),
  );
}
