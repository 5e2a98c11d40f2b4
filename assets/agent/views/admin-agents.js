// Admin: agents. Create with a password or an invite link, change roles,
// teams and the chat spaces each works in, disable and enable, issue a new
// invite link.

import { del, get, patch, post } from '../api.js';
import { copyText, field, h, mount } from '../dom.js';
import { relativeTime, t } from '../i18n.js';
import { emit, state } from '../store.js';
import { capacityInput } from './assignment.js';
import { statusLine } from './status-line.js';

export class AgentsPage {
  constructor(root) {
    this.status = statusLine();
    this.table = h('tbody');
    this.invite = h('div', { class: 'invite', hidden: true });
    mount(
      root,
      h(
        'div',
        { class: 'stack' },
        this.createForm(),
        this.invite,
        this.status.el,
        h(
          'div',
          { class: 'card table-wrap' },
          h(
            'table',
            { class: 'table' },
            h(
              'thead',
              {},
              h('tr', {}, [t('agents.name'), t('agents.email'), t('agents.role'), t('agents.teams'), t('agents.spaces'), t('agents.capacity'), t('agents.state'), ''].map((c) => h('th', {}, c))),
            ),
            this.table,
          ),
        ),
      ),
    );
    this.load();
  }

  destroy() {}

  async load() {
    try {
      const [agents, teams, spaces] = await Promise.all([get('/agents'), get('/teams'), get('/chat-spaces')]);
      state.agents = agents.items;
      state.teams = teams.items;
      this.spaces = spaces.items;
      emit('agents');
    } catch (e) {
      this.status.error(e);
    }
    this.render();
  }

  createForm() {
    const roles = ['agent', 'admin', ...(state.me?.role === 'owner' ? ['owner'] : [])];
    const form = h(
      'form',
      { class: 'card inline-form', dataset: { form: 'new-agent' } },
      h('h2', {}, t('agents.add')),
      h(
        'div',
        { class: 'inline-fields' },
        field(t('agents.name'), h('input', { class: 'input', name: 'displayName', required: true, maxlength: 100 })),
        field(t('agents.email'), h('input', { class: 'input', name: 'email', type: 'email', required: true })),
        field(
          t('agents.role'),
          h(
            'select',
            { class: 'input', name: 'role' },
            roles.map((r) => h('option', { value: r }, t(`role.${r}`))),
          ),
        ),
        field(t('agents.password'), h('input', { class: 'input', name: 'password', type: 'password', autocomplete: 'new-password', minlength: 8 }), t('agents.passwordHint')),
      ),
      h('button', { class: 'btn btn--primary', type: 'submit' }, t('agents.create')),
    );
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const v = Object.fromEntries(new FormData(form).entries());
      try {
        const created = await post('/agents', { displayName: v.displayName, email: v.email, role: v.role, password: v.password || undefined });
        form.reset();
        this.showInvite(created.agent, created.inviteUrl);
        this.status.ok(t('agents.created', { name: created.agent.displayName }));
        this.load();
      } catch (err) {
        this.status.error(err);
      }
    });
    return form;
  }

  showInvite(agent, url) {
    if (!url) {
      this.invite.hidden = true;
      return;
    }
    mount(
      this.invite,
      h('p', {}, t('agents.inviteFor', { name: agent.displayName })),
      h('pre', { class: 'snippet' }, h('code', {}, url)),
      h('button', { type: 'button', class: 'btn btn--sm', onclick: () => copyText(url) }, t('spaces.copy')),
    );
    this.invite.hidden = false;
  }

  render() {
    const admin = state.me?.role === 'admin' || state.me?.role === 'owner';
    mount(
      this.table,
      state.agents.map((a) => {
        const self = a.id === state.me?.id;
        const role = h(
          'select',
          { class: 'input input--sm', 'aria-label': t('agents.role'), disabled: !admin || self || (a.role === 'owner' && state.me?.role !== 'owner') },
          ['agent', 'admin', 'owner'].map((r) => h('option', { value: r, selected: r === a.role, disabled: r === 'owner' && state.me?.role !== 'owner' }, t(`role.${r}`))),
        );
        role.addEventListener('change', () => this.change(a, { role: role.value }));
        const teams = h(
          'div',
          { class: 'chips' },
          state.teams.length
            ? state.teams.map((team) => {
                const box = h('input', { type: 'checkbox', checked: a.teamIds.includes(team.id), disabled: !admin });
                box.addEventListener('change', () => {
                  const ids = new Set(a.teamIds);
                  if (box.checked) ids.add(team.id);
                  else ids.delete(team.id);
                  this.change(a, { teamIds: [...ids] });
                });
                return h('label', { class: 'chip' }, box, team.name);
              })
            : h('span', { class: 'muted' }, '—'),
        );
        const spaces = this.spacesOf(a, admin);
        const stateText = a.disabled ? t('agents.disabled') : a.invitePending ? t('agents.invitePending') : a.isOnline ? t('agents.online') : a.lastSeenAt ? t('agents.lastSeen', { time: relativeTime(a.lastSeenAt) }) : t('agents.offline');
        const actions = [];
        if (admin && !self) {
          if (a.disabled) actions.push(h('button', { type: 'button', class: 'btn btn--sm', onclick: () => this.change(a, { disabled: false }) }, t('agents.enable')));
          else actions.push(h('button', { type: 'button', class: 'btn btn--sm btn--danger', onclick: () => this.disable(a) }, t('agents.disable')));
          if (a.invitePending && !a.disabled) actions.push(h('button', { type: 'button', class: 'btn btn--sm', onclick: () => this.reinvite(a) }, t('agents.newInvite')));
        }
        return h(
          'tr',
          { class: a.disabled ? 'is-disabled' : null, dataset: { id: a.id } },
          h('td', {}, h('span', { class: ['dot', a.isOnline ? 'dot--online' : 'dot--offline'], 'aria-hidden': 'true' }), ' ', a.displayName, self ? ` (${t('thread.you')})` : ''),
          h('td', {}, a.email),
          h('td', {}, role),
          h('td', {}, teams),
          h('td', {}, spaces),
          h('td', {}, capacityInput(a, admin, (max) => this.change(a, { maxConcurrent: max }))),
          h('td', {}, stateText),
          h('td', { class: 'actions' }, actions),
        );
      }),
    );
  }

  /** Where the agent works: every space (null) or the ticked ones.
   * Owners and admins work everywhere whatever is ticked. */
  spacesOf(a, admin) {
    if (a.role !== 'agent') return h('span', { class: 'muted' }, t('agents.allSpaces'));
    const all = a.spaceIds == null;
    const allBox = h('input', { type: 'checkbox', checked: all, disabled: !admin });
    allBox.addEventListener('change', () => this.change(a, { spaceIds: allBox.checked ? null : [] }));
    const boxes = (this.spaces || []).map((space) => {
      const box = h('input', { type: 'checkbox', checked: all || a.spaceIds.includes(space.id), disabled: !admin || all });
      box.addEventListener('change', () => {
        const ids = new Set(a.spaceIds || []);
        if (box.checked) ids.add(space.id);
        else ids.delete(space.id);
        this.change(a, { spaceIds: [...ids] });
      });
      return h('label', { class: 'chip' }, box, space.name);
    });
    return h('div', { class: 'chips', dataset: { spaces: a.id } }, h('label', { class: 'chip' }, allBox, t('agents.allSpaces')), boxes);
  }

  async change(agent, body) {
    try {
      const updated = await patch(`/agents/${agent.id}`, body);
      state.agents = state.agents.map((a) => (a.id === updated.id ? updated : a));
      this.status.ok(t('common.saved'));
    } catch (e) {
      this.status.error(e);
    }
    this.render();
  }

  async disable(agent) {
    if (!window.confirm(t('agents.disableConfirm', { name: agent.displayName }))) return;
    try {
      await del(`/agents/${agent.id}`);
      this.load();
    } catch (e) {
      this.status.error(e);
    }
  }

  async reinvite(agent) {
    try {
      const { inviteUrl } = await post(`/agents/${agent.id}/invite`);
      this.showInvite(agent, inviteUrl);
    } catch (e) {
      this.status.error(e);
    }
  }
}
