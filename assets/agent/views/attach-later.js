// "Add files" on an agent's own recent message: uploads the chosen files
// for the thread, then puts them on the message
// (`POST /messages/:id/attachments`).

import { post, upload } from '../api.js';
import { h } from '../dom.js';
import { t } from '../i18n.js';
import '../i18n-desk.js';

/** The action button; `done(message)` gets the changed message. */
export function attachLater(message, done, failed) {
  const input = h('input', { type: 'file', multiple: true, hidden: true });
  input.addEventListener('change', async () => {
    const files = [...input.files];
    input.value = '';
    if (!files.length) return;
    try {
      const path = `/attachments?threadId=${encodeURIComponent(message.threadId)}`;
      const uploaded = await Promise.all(files.map((f) => upload(path, f)));
      done(await post(`/messages/${message.id}/attachments`, { attachmentIds: uploaded.map((a) => a.id) }));
    } catch (e) {
      failed(e);
    }
  });
  const button = h('button', { type: 'button', class: 'btn btn--sm btn--ghost', dataset: { action: 'attach-later' }, onclick: () => input.click() }, t('conv.attachLater'));
  return h('span', {}, button, input);
}
