// The admin area: one module per page (the top bar links to each).

import { h, mount } from '../dom.js';
import { t } from '../i18n.js';
import { AgentsPage } from './admin-agents.js';
import { SpacesPage } from './admin-spaces.js';
import { TeamsPage } from './admin-teams.js';
import { TemplatesPage } from './admin-templates.js';

const PAGES = { spaces: SpacesPage, agents: AgentsPage, teams: TeamsPage, templates: TemplatesPage };

export class Admin {
  constructor(root, { page, id }) {
    this.body = h('div', { class: 'admin__body' });
    mount(root, h('div', { class: 'admin' }, this.body));
    this.page = null;
    this.current = null;
    this.update({ page, id });
    document.body.dataset.screen = 'admin';
  }

  update({ page, id }) {
    const name = PAGES[page] ? page : 'spaces';
    if (this.page === name && this.current?.update) {
      this.current.update({ id });
      return;
    }
    this.current?.destroy?.();
    this.page = name;
    this.current = new PAGES[name](this.body, { id });
  }

  destroy() {
    this.current?.destroy?.();
  }
}

/** A small status line for forms: "Saved" or the server's message. */
export function statusLine() {
  const el = h('p', { class: 'form-status', role: 'status', hidden: true });
  let timer = 0;
  return {
    el,
    ok(text) {
      el.textContent = text;
      el.className = 'form-status form-status--ok';
      el.hidden = false;
      clearTimeout(timer);
      timer = setTimeout(() => (el.hidden = true), 4000);
    },
    error(e) {
      el.textContent = typeof e === 'string' ? e : e.message || t('error.generic');
      el.className = 'form-status form-status--error';
      el.hidden = false;
      clearTimeout(timer);
    },
  };
}
