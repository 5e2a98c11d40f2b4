// Admin: teams (departments). A thread routed to a team is available to
// that team's agents only; membership is set on the agents page.

import { del, get, patch, post } from '../api.js';
import { field, h, mount } from '../dom.js';
import { t } from '../i18n.js';
import { state } from '../store.js';
import { statusLine } from './status-line.js';

export class TeamsPage {
  constructor(root) {
    this.status = statusLine();
    this.list = h('ul', { class: 'card plain-list' });
    const form = h(
      'form',
      { class: 'card inline-form', dataset: { form: 'new-team' } },
      h('h2', {}, t('teams.add')),
      h('div', { class: 'inline-fields' }, field(t('teams.name'), h('input', { class: 'input', name: 'name', required: true, maxlength: 100 }))),
      h('button', { class: 'btn btn--primary', type: 'submit' }, t('teams.create')),
    );
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      try {
        await post('/teams', { name: form.elements.namedItem('name').value });
        form.reset();
        this.load();
      } catch (err) {
        this.status.error(err);
      }
    });
    mount(root, h('div', { class: 'stack' }, form, this.status.el, h('p', { class: 'muted' }, t('teams.hint')), this.list));
    this.load();
  }

  destroy() {}

  async load() {
    try {
      const [teams, agents] = await Promise.all([get('/teams'), get('/agents')]);
      state.teams = teams.items;
      state.agents = agents.items;
    } catch (e) {
      this.status.error(e);
    }
    this.render();
  }

  render() {
    if (!state.teams.length) {
      mount(this.list, h('li', { class: 'muted' }, t('teams.none')));
      return;
    }
    mount(
      this.list,
      state.teams.map((team) => {
        const members = state.agents.filter((a) => a.teamIds.includes(team.id)).map((a) => a.displayName);
        const name = h('input', { class: 'input input--sm', value: team.name, 'aria-label': t('teams.name'), maxlength: 100 });
        const save = async () => {
          if (name.value.trim() === team.name) return;
          try {
            await patch(`/teams/${team.id}`, { name: name.value });
            this.status.ok(t('common.saved'));
            this.load();
          } catch (e) {
            this.status.error(e);
          }
        };
        name.addEventListener('change', save);
        return h(
          'li',
          { class: 'plain-list__item' },
          name,
          h('span', { class: 'muted' }, members.length ? members.join(', ') : t('teams.noMembers')),
          h(
            'button',
            {
              type: 'button',
              class: 'btn btn--sm btn--danger',
              onclick: async () => {
                if (!window.confirm(t('teams.deleteConfirm', { name: team.name }))) return;
                try {
                  await del(`/teams/${team.id}`);
                  this.load();
                } catch (e) {
                  this.status.error(e);
                }
              },
            },
            t('common.delete'),
          ),
        );
      }),
    );
  }
}
