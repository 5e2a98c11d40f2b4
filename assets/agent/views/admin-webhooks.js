// Admin: webhooks — the organization's endpoints, the events each hears,
// the secret (shown once; rotation keeps the old one for a day), a test
// event, and each webhook's delivery log with a retry button.

import { del, get, patch, post, qs } from '../api.js';
import { field, h, mount } from '../dom.js';
import { fullTime, t } from '../i18n.js';
import { secretOnce } from './secret-once.js';
import { statusLine } from './status-line.js';

const EVENTS = [
  'message.new',
  'participant.joined',
  'participant.left',
  'thread.created',
  'thread.updated',
  'thread.closed',
  'visitor.offline_message',
];

export class WebhooksPage {
  constructor(root) {
    this.status = statusLine();
    this.list = h('div', { class: 'stack', dataset: { list: 'webhooks' } });
    this.revealed = h('div', {});
    this.open = new Set();
    mount(root, h('div', { class: 'stack' }, this.form(), this.status.el, this.revealed, this.list));
    this.load();
  }

  destroy() {}

  form() {
    const form = h(
      'form',
      { class: 'card inline-form', dataset: { form: 'new-webhook' } },
      h('h2', {}, t('webhooks.add')),
      h(
        'div',
        { class: 'inline-fields' },
        field(t('webhooks.url'), h('input', { class: 'input', name: 'url', type: 'url', required: true, maxlength: 2000, placeholder: 'https://' })),
        field(t('webhooks.description'), h('input', { class: 'input', name: 'description', maxlength: 500 })),
      ),
      h(
        'fieldset',
        { class: 'chips' },
        h('legend', {}, t('webhooks.events')),
        EVENTS.map((e) => h('label', { class: 'chip' }, h('input', { type: 'checkbox', name: 'event', value: e }), e)),
      ),
      h('button', { class: 'btn btn--primary', type: 'submit' }, t('webhooks.create')),
    );
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const events = [...form.querySelectorAll('input[name=event]:checked')].map((i) => i.value);
      try {
        const created = await post('/webhooks', {
          url: form.elements.namedItem('url').value,
          description: form.elements.namedItem('description').value || null,
          events,
        });
        form.reset();
        mount(this.revealed, secretOnce(t('webhooks.secret'), created.secret));
        this.load();
      } catch (err) {
        this.status.error(err);
      }
    });
    return form;
  }

  async load() {
    try {
      const hooks = await get('/webhooks');
      this.render(hooks.items);
    } catch (e) {
      this.status.error(e);
    }
  }

  action(label, fn, cls = 'btn btn--sm', name = '') {
    return h(
      'button',
      {
        type: 'button',
        class: cls,
        dataset: { action: name },
        onclick: async () => {
          try {
            await fn();
          } catch (e) {
            this.status.error(e);
          }
        },
      },
      label,
    );
  }

  render(hooks) {
    if (!hooks.length) {
      mount(this.list, h('p', { class: 'muted' }, t('webhooks.none')));
      return;
    }
    mount(
      this.list,
      hooks.map((w) => {
        const log = h('div', { class: 'deliveries', dataset: { deliveries: w.id } });
        if (this.open.has(w.id)) this.deliveries(w, log);
        const state = w.enabled ? (w.failingSince ? t('webhooks.failing') : t('webhooks.active')) : t('webhooks.disabled');
        return h(
          'section',
          { class: 'card', dataset: { webhook: w.id } },
          h('div', { class: 'inline-fields' }, h('strong', { class: 'mono' }, w.url), h('span', { class: 'badge', dataset: { state: '' } }, state)),
          w.description ? h('p', {}, w.description) : null,
          h('p', { class: 'muted' }, w.events.join(', ')),
          w.disabledReason ? h('p', { class: 'form-status form-status--error' }, w.disabledReason) : null,
          h(
            'div',
            { class: 'inline-fields' },
            this.action(t('webhooks.test'), async () => {
              await post(`/webhooks/${w.id}/test`);
              this.status.ok(t('webhooks.testSent'));
              this.open.add(w.id);
              this.deliveries(w, log);
            }, 'btn btn--sm', 'test'),
            this.action(
              this.open.has(w.id) ? t('webhooks.hideLog') : t('webhooks.showLog'),
              async () => {
                if (this.open.has(w.id)) this.open.delete(w.id);
                else this.open.add(w.id);
                this.load();
              },
              'btn btn--sm',
              'log',
            ),
            this.action(w.enabled ? t('webhooks.disable') : t('webhooks.enable'), async () => {
              await patch(`/webhooks/${w.id}`, { enabled: !w.enabled });
              this.load();
            }, 'btn btn--sm', 'toggle'),
            this.action(t('webhooks.rotate'), async () => {
              if (!window.confirm(t('webhooks.rotateConfirm'))) return;
              const r = await post(`/webhooks/${w.id}/rotate-secret`);
              mount(this.revealed, secretOnce(t('webhooks.secret'), r.secret));
            }, 'btn btn--sm', 'rotate'),
            this.action(t('common.delete'), async () => {
              if (!window.confirm(t('webhooks.deleteConfirm', { url: w.url }))) return;
              await del(`/webhooks/${w.id}`);
              this.load();
            }, 'btn btn--sm btn--danger', 'delete'),
          ),
          log,
        );
      }),
    );
  }

  async deliveries(w, box) {
    try {
      const page = await get(`/webhooks/${w.id}/deliveries${qs({ limit: 50 })}`);
      if (!page.items.length) {
        mount(box, h('p', { class: 'muted' }, t('webhooks.noDeliveries')));
        return;
      }
      mount(
        box,
        h(
          'table',
          { class: 'table' },
          h('thead', {}, h('tr', {}, [t('webhooks.when'), t('webhooks.event'), t('webhooks.status'), t('webhooks.lastAttempt'), t('webhooks.next'), ''].map((c) => h('th', {}, c)))),
          h(
            'tbody',
            {},
            page.items.map((d) => {
              const last = d.attempts[d.attempts.length - 1];
              const outcome = last ? (last.responseCode ? `HTTP ${last.responseCode}` : last.error || '') + ` · ${last.durationMs} ms` : '—';
              return h(
                'tr',
                { dataset: { delivery: d.id, status: d.status } },
                h('td', {}, fullTime(d.createdAt)),
                h('td', {}, d.eventType),
                h('td', {}, t(`webhooks.status.${d.status}`), ` (${d.attempts.length})`),
                h('td', {}, outcome),
                h('td', {}, d.nextAttemptAt ? fullTime(d.nextAttemptAt) : '—'),
                h(
                  'td',
                  {},
                  d.status === 'delivered'
                    ? null
                    : this.action(t('common.retry'), async () => {
                        await post(`/webhooks/${w.id}/deliveries/${d.id}/retry`);
                        this.deliveries(w, box);
                      }, 'btn btn--sm', 'retry'),
                ),
              );
            }),
          ),
        ),
        this.action(t('webhooks.refresh'), async () => this.deliveries(w, box), 'btn btn--sm', 'refresh-log'),
      );
    } catch (e) {
      this.status.error(e);
    }
  }
}
