// The admin area: one module per page (the top bar links to each).

import { h, mount } from '../dom.js';
import { t } from '../i18n.js';
import { AgentsPage } from './admin-agents.js';
import { AuditPage } from './admin-audit.js';
import { EmailPage } from './admin-email.js';
import { IntegrationsPage } from './admin-integrations.js';
import { LabelsPage } from './admin-labels.js';
import { ReportsPage } from './admin-reports.js';
import { SpacesPage } from './admin-spaces.js';
import { TeamsPage } from './admin-teams.js';
import { TemplatesPage } from './admin-templates.js';
import { WebhooksPage } from './admin-webhooks.js';

const PAGES = {
  spaces: SpacesPage,
  agents: AgentsPage,
  teams: TeamsPage,
  templates: TemplatesPage,
  labels: LabelsPage,
  integrations: IntegrationsPage,
  webhooks: WebhooksPage,
  audit: AuditPage,
  email: EmailPage,
  reports: ReportsPage,
};

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
