// Admin: what the organization's own platform uses — API tokens (shown
// once), signing keys for member tokens (shown once), and the members
// their tokens named.

import { del, get, post } from '../api.js';
import { field, h, mount } from '../dom.js';
import { relativeTime, t } from '../i18n.js';
import { secretOnce } from './secret-once.js';
import { statusLine } from './status-line.js';

export class IntegrationsPage {
  constructor(root) {
    this.status = statusLine();
    this.tokens = h('ul', { class: 'card plain-list', dataset: { list: 'tokens' } });
    this.keys = h('ul', { class: 'card plain-list', dataset: { list: 'keys' } });
    this.members = h('ul', { class: 'card plain-list', dataset: { list: 'members' } });
    this.revealed = h('div', {});
    mount(
      root,
      h(
        'div',
        { class: 'stack' },
        this.status.el,
        this.revealed,
        h('h2', {}, t('integrations.tokens')),
        h('p', { class: 'muted' }, t('integrations.tokensHint')),
        h('p', {}, h('a', { href: '/api/docs', target: '_blank', rel: 'noopener', dataset: { link: 'api-docs' } }, t('integrations.apiDocs'))),
        this.tokenForm(),
        this.tokens,
        h('h2', {}, t('integrations.keys')),
        h('p', { class: 'muted' }, t('integrations.keysHint')),
        this.keyForm(),
        this.keys,
        h('h2', {}, t('integrations.members')),
        this.members,
      ),
    );
    this.load();
  }

  destroy() {}

  tokenForm() {
    const scope = (name) =>
      h('label', { class: 'chip' }, h('input', { type: 'checkbox', name: 'scope', value: name, checked: name === 'management' }), t(`integrations.scope.${name}`));
    const form = h(
      'form',
      { class: 'card inline-form', dataset: { form: 'new-token' } },
      h('div', { class: 'inline-fields' }, field(t('integrations.name'), h('input', { class: 'input', name: 'name', required: true, maxlength: 100 })), scope('management'), scope('agent')),
      h('button', { class: 'btn btn--primary', type: 'submit' }, t('integrations.createToken')),
    );
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const scopes = [...form.querySelectorAll('input[name=scope]:checked')].map((i) => i.value);
      try {
        const created = await post('/api-tokens', { name: form.elements.namedItem('name').value, scopes });
        form.reset();
        mount(this.revealed, secretOnce(t('integrations.newToken', { name: created.name }), created.token));
        this.load();
      } catch (err) {
        this.status.error(err);
      }
    });
    return form;
  }

  keyForm() {
    const form = h(
      'form',
      { class: 'card inline-form', dataset: { form: 'new-key' } },
      h('div', { class: 'inline-fields' }, field(t('integrations.name'), h('input', { class: 'input', name: 'name', required: true, maxlength: 100 }))),
      h('button', { class: 'btn btn--primary', type: 'submit' }, t('integrations.createKey')),
    );
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      try {
        const created = await post('/signing-keys', { name: form.elements.namedItem('name').value });
        form.reset();
        mount(
          this.revealed,
          h('div', {}, secretOnce(t('integrations.newKey', { name: created.name }), created.secret), h('p', { class: 'muted' }, t('integrations.keyId', { id: created.id }))),
        );
        this.load();
      } catch (err) {
        this.status.error(err);
      }
    });
    return form;
  }

  async load() {
    try {
      const [tokens, keys, members] = await Promise.all([get('/api-tokens'), get('/signing-keys'), get('/members')]);
      this.render(tokens.items, keys.items, members.items);
    } catch (e) {
      this.status.error(e);
    }
  }

  removeButton(path, confirmText) {
    return h(
      'button',
      {
        type: 'button',
        class: 'btn btn--sm btn--danger',
        onclick: async () => {
          if (!window.confirm(confirmText)) return;
          try {
            await del(path);
            this.load();
          } catch (e) {
            this.status.error(e);
          }
        },
      },
      t('integrations.revoke'),
    );
  }

  render(tokens, keys, members) {
    mount(
      this.tokens,
      tokens.length
        ? tokens.map((tk) =>
            h(
              'li',
              { class: 'plain-list__item', dataset: { token: tk.id } },
              h('strong', {}, tk.name),
              h('span', { class: 'muted' }, tk.scopes.map((s) => t(`integrations.scope.${s}`)).join(', ')),
              h('span', { class: 'muted' }, tk.lastUsedAt ? t('integrations.lastUsed', { when: relativeTime(tk.lastUsedAt) }) : t('integrations.neverUsed')),
              this.removeButton(`/api-tokens/${tk.id}`, t('integrations.revokeConfirm', { name: tk.name })),
            ),
          )
        : h('li', { class: 'muted' }, t('integrations.noTokens')),
    );
    mount(
      this.keys,
      keys.length
        ? keys.map((k) =>
            h(
              'li',
              { class: 'plain-list__item', dataset: { key: k.id } },
              h('strong', {}, k.name),
              h('code', { class: 'muted' }, k.id),
              this.removeButton(`/signing-keys/${k.id}`, t('integrations.revokeConfirm', { name: k.name })),
            ),
          )
        : h('li', { class: 'muted' }, t('integrations.noKeys')),
    );
    mount(
      this.members,
      members.length
        ? members.map((m) =>
            h(
              'li',
              { class: 'plain-list__item' },
              h('strong', {}, m.name),
              h('code', { class: 'muted' }, m.externalId),
              h('span', { class: 'muted' }, m.email || ''),
              h('span', { class: 'muted' }, m.lastSeenAt ? relativeTime(m.lastSeenAt) : ''),
            ),
          )
        : h('li', { class: 'muted' }, t('integrations.noMembers')),
    );
  }
}
