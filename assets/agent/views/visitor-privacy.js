// The visitor panel's data-protection actions (admins): download
// everything stored about the visitor as JSON, and erase it all after an
// explicit confirmation.

import { blob, del } from '../api.js';
import { h, mount } from '../dom.js';
import { t } from '../i18n.js';
import { isAdmin, removeThread } from '../store.js';

/** Saves a Blob under `name` through a temporary link. */
function save(data, name) {
  const url = URL.createObjectURL(data);
  const a = h('a', { href: url, download: name, hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

/**
 * Export and erase buttons for `visitorId`, or nothing for plain agents.
 * `threads`: the visitor's threads (dropped from the lists once erased);
 * `erased`: called after the erasure.
 */
export function privacyActions(visitorId, threads, erased) {
  if (!isAdmin()) return null;
  const box = h('div', { class: 'privacy', dataset: { part: 'visitor-privacy' } });
  const error = (e) => h('p', { class: 'form-error', role: 'alert' }, e.message);
  const idle = () =>
    mount(
      box,
      h('h3', { class: 'visitor__section' }, t('privacy.title')),
      h(
        'div',
        { class: 'privacy__buttons' },
        h('button', { type: 'button', class: 'btn btn--sm', dataset: { action: 'export-visitor' }, onclick: exportData }, t('privacy.export')),
        h('button', { type: 'button', class: 'btn btn--sm btn--danger', dataset: { action: 'erase-visitor' }, onclick: confirm }, t('privacy.erase')),
      ),
    );
  async function exportData() {
    try {
      save(await blob(`/visitors/${visitorId}/export`), `visitor-${visitorId}.json`);
    } catch (e) {
      box.append(error(e));
    }
  }
  function confirm() {
    const yes = h('button', { type: 'button', class: 'btn btn--sm btn--danger', dataset: { action: 'confirm-erase' }, onclick: erase }, t('privacy.confirm'));
    mount(
      box,
      h('h3', { class: 'visitor__section' }, t('privacy.title')),
      h('p', { class: 'privacy__warning', role: 'alert' }, t('privacy.warning', { n: threads.length })),
      h('div', { class: 'privacy__buttons' }, yes, h('button', { type: 'button', class: 'btn btn--sm', dataset: { action: 'cancel-erase' }, onclick: idle }, t('common.cancel'))),
    );
    yes.focus();
  }
  async function erase() {
    try {
      await del(`/visitors/${visitorId}`);
      for (const th of threads) removeThread(th.id);
      erased();
    } catch (e) {
      box.append(error(e));
    }
  }
  idle();
  return box;
}
