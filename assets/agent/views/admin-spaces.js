// Admin: chat spaces. Name and allowed domains, appearance with a live
// preview, opening hours in a time zone, offline form, visitor data,
// attachments, expiry and retention, the embed snippet with a copy
// button, key rotation.

import { del, get, patch, post } from '../api.js';
import { copyText, field, h, mount } from '../dom.js';
import { t, weekday } from '../i18n.js';
import { emit, state } from '../store.js';
import { assignmentFields, assignmentValues } from './assignment.js';
import { statusLine } from './status-line.js';
import { WidgetPreview } from './widget-preview.js';

// The widget's languages, for a space's title and welcome in each.
const LANGS = [
  ['en', 'English'],
  ['pl', 'Polski'],
  ['ru', 'Русский'],
];

// Who the widget's header shows: the space's agents (online first), or
// up to three chosen ones.
function teamFields(s) {
  const agents = state.agents.filter((a) => !a.disabled && !a.invitePending);
  const chosen = s.headerAgents || [];
  const auto = h('input', { type: 'checkbox', name: 'teamAuto', checked: !s.headerAgents });
  const picks = [1, 2, 3].map((n) =>
    h(
      'select',
      { class: 'input', name: 'team' + n, 'aria-label': t('spaces.team') + ' ' + n, disabled: auto.checked },
      h('option', { value: '' }, '—'),
      agents.map((a) => h('option', { value: a.id, selected: a.id === chosen[n - 1] }, a.displayName)),
    ),
  );
  auto.addEventListener('change', () => picks.forEach((p) => (p.disabled = auto.checked)));
  return h('fieldset', { class: 'card team' }, h('legend', {}, t('spaces.team')), h('label', { class: 'check' }, auto, t('spaces.teamAuto')), h('div', { class: 'inline-fields' }, ...picks));
}

// The languages given a title or a welcome; the others fall back to the
// space's own words.
function translationsOf(f) {
  const out = {};
  for (const [code] of LANGS) {
    const title = f('tr-title-' + code).value.trim();
    const welcomeMessage = f('tr-welcome-' + code).value.trim();
    if (title || welcomeMessage) out[code] = { title, welcomeMessage };
  }
  return out;
}

const MB = 1024 * 1024;
const DAYS = [0, 1, 2, 3, 4, 5, 6];

/** IANA zones for the select, with `current` and UTC always among them. */
function timezones(current) {
  let zones;
  try {
    zones = [...Intl.supportedValuesOf('timeZone')];
  } catch {
    zones = ['Europe/Warsaw', 'Europe/London', 'America/New_York'];
  }
  for (const z of ['UTC', current]) if (z && !zones.includes(z)) zones.unshift(z);
  return zones;
}

function domainsOf(text) {
  return text
    .split(/[\s,]+/)
    .map((d) => d.trim())
    .filter(Boolean);
}

export class SpacesPage {
  constructor(root, { id }) {
    this.root = root;
    this.list = h('ul', { class: 'side-list' });
    this.editor = h('section', { class: 'admin__editor' });
    mount(
      root,
      h(
        'div',
        { class: 'admin__split' },
        h('aside', { class: 'admin__side' }, h('a', { class: 'btn btn--primary btn--block', href: '#/admin/spaces/new', dataset: { action: 'new-space' } }, t('spaces.new')), this.list),
        this.editor,
      ),
    );
    this.id = undefined;
    this.reload().then(() => this.update({ id }));
  }

  async reload() {
    try {
      state.spaces = (await get('/chat-spaces')).items;
      emit('spaces');
    } catch {
      // The list stays as it was.
    }
    this.renderList();
  }

  renderList() {
    mount(
      this.list,
      state.spaces.map((s) => h('li', {}, h('a', { href: `#/admin/spaces/${s.id}`, class: ['side-list__item', s.id === this.id && 'side-list__item--active'] }, s.name))),
    );
  }

  update({ id }) {
    this.id = id || state.spaces[0]?.id || 'new';
    this.renderList();
    if (this.id === 'new') this.renderNew();
    else this.renderEditor(this.id);
  }

  destroy() {}

  renderNew() {
    const status = statusLine();
    const form = h(
      'form',
      { class: 'stack card', dataset: { form: 'new-space' } },
      h('h2', {}, t('spaces.new')),
      field(t('spaces.name'), h('input', { class: 'input', name: 'name', required: true, maxlength: 100, autofocus: true })),
      field(t('spaces.domains'), h('textarea', { class: 'input', name: 'allowedDomains', rows: 3, placeholder: 'example.com\n*.example.com' }), t('spaces.domainsHint')),
      status.el,
      h('button', { class: 'btn btn--primary', type: 'submit' }, t('spaces.create')),
    );
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const v = Object.fromEntries(new FormData(form).entries());
      try {
        const space = await post('/chat-spaces', { name: v.name, allowedDomains: domainsOf(v.allowedDomains) });
        state.spaces = [...state.spaces, space];
        emit('spaces');
        location.hash = `#/admin/spaces/${space.id}`;
      } catch (err) {
        status.error(err);
      }
    });
    mount(this.editor, form);
    form.querySelector('input[name=name]').focus();
  }

  async renderEditor(id) {
    let space = state.spaces.find((s) => s.id === id);
    try {
      space = await get(`/chat-spaces/${id}`);
    } catch (e) {
      if (!space) {
        mount(this.editor, h('p', { class: 'form-error' }, e.message));
        return;
      }
    }
    if (this.id !== id) return;
    mount(this.editor, new SpaceEditor(space, (saved) => this.saved(saved)).el);
  }

  saved(space) {
    if (!space) {
      state.spaces = state.spaces.filter((s) => s.id !== this.id);
      emit('spaces');
      location.hash = '#/admin/spaces';
      return;
    }
    state.spaces = state.spaces.map((s) => (s.id === space.id ? space : s));
    emit('spaces');
    this.renderList();
  }
}

class SpaceEditor {
  constructor(space, onSaved) {
    this.space = space;
    this.onSaved = onSaved;
    this.preview = new WidgetPreview();
    this.status = statusLine();
    const s = space.settings;
    const input = (name, value, extra = {}) => h('input', { class: 'input', name, value: value ?? '', ...extra });
    const select = (name, value, options) => h('select', { class: 'input', name }, options.map(([v, label]) => h('option', { value: v, selected: v === value }, label)));
    const check = (name, value) => h('input', { type: 'checkbox', name, checked: !!value });

    this.ranges = h('div', { class: 'ranges' });
    const hours = s.openingHours;
    this.alwaysOpen = check('alwaysOpen', !hours);
    const zone = hours?.timezone || Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
    this.timezone = select(
      'timezone',
      zone,
      timezones(zone).map((z) => [z, z]),
    );
    for (const r of hours?.ranges || []) this.addRange(r);
    if (!hours) for (const day of [0, 1, 2, 3, 4]) this.addRange({ day, from: '09:00', to: '17:00' });

    this.form = h(
      'form',
      { class: 'space-form', dataset: { form: 'space', id: space.id } },
      h(
        'fieldset',
        { class: 'card' },
        h('legend', {}, t('spaces.general')),
        field(t('spaces.name'), input('name', space.name, { required: true, maxlength: 100 })),
        field(t('spaces.domains'), h('textarea', { class: 'input', name: 'allowedDomains', rows: 3 }, space.allowedDomains.join('\n')), t('spaces.domainsHint')),
      ),
      h(
        'fieldset',
        { class: 'card appearance' },
        h('legend', {}, t('spaces.appearance')),
        h(
          'div',
          { class: 'appearance__grid' },
          h(
            'div',
            { class: 'stack' },
            field(t('spaces.title'), input('title', s.title, { maxlength: 100 })),
            field(t('spaces.welcome'), h('textarea', { class: 'input', name: 'welcomeMessage', rows: 2, maxlength: 1000 }, s.welcomeMessage)),
            h(
              'div',
              { class: 'inline-fields' },
              field(t('spaces.accent'), input('accentColor', s.accentColor, { type: 'color' })),
              field(
                t('spaces.position'),
                select('position', s.position, [
                  ['bottomRight', t('spaces.bottomRight')],
                  ['bottomLeft', t('spaces.bottomLeft')],
                ]),
              ),
              field(
                t('spaces.theme'),
                select('theme', s.theme, [
                  ['auto', t('spaces.themeAuto')],
                  ['light', t('spaces.themeLight')],
                  ['dark', t('spaces.themeDark')],
                ]),
              ),
              field(
                t('spaces.locale'),
                select('locale', s.locale, [
                  ['', t('spaces.localeVisitor')],
                  ['en', 'English'],
                  ['pl', 'Polski'],
                  ['ru', 'Русский'],
                ]),
              ),
            ),
          ),
          this.preview.el,
        ),
      ),
      teamFields(s),
      h(
        'fieldset',
        { class: 'card translations' },
        h('legend', {}, t('spaces.translations')),
        h('p', { class: 'muted' }, t('spaces.translationsHint')),
        ...LANGS.map(([code, name]) => {
          const own = (s.translations || {})[code] || {};
          return h(
            'div',
            { class: 'inline-fields' },
            field(name + ' · ' + t('spaces.title'), input('tr-title-' + code, own.title || '', { maxlength: 100 })),
            field(name + ' · ' + t('spaces.welcome'), h('textarea', { class: 'input', name: 'tr-welcome-' + code, rows: 2, maxlength: 1000 }, own.welcomeMessage || '')),
          );
        }),
      ),
      h(
        'fieldset',
        { class: 'card' },
        h('legend', {}, t('spaces.hours')),
        h('label', { class: 'check' }, this.alwaysOpen, t('spaces.alwaysOpen')),
        h(
          'div',
          { class: 'hours' },
          field(t('spaces.timezone'), this.timezone),
          this.ranges,
          h('button', { type: 'button', class: 'btn btn--sm', onclick: () => this.addRange({ day: 0, from: '09:00', to: '17:00' }) }, t('spaces.addRange')),
        ),
      ),
      h(
        'fieldset',
        { class: 'card' },
        h('legend', {}, t('spaces.visitors')),
        h('label', { class: 'check' }, check('offlineMessages', s.offlineMessages), t('spaces.offline')),
        h('label', { class: 'check' }, check('csat', s.csat !== false), t('spaces.csat')),
        field(
          t('spaces.visitorData'),
          select('requireVisitorData', s.requireVisitorData, [
            ['none', t('spaces.dataNone')],
            ['beforeFirstMessage', t('spaces.dataBefore')],
            ['afterFirstMessage', t('spaces.dataAfter')],
          ]),
        ),
        field(
          t('spaces.identity'),
          select('identityVerification', s.identityVerification || 'off', [
            ['off', t('spaces.identityOff')],
            ['optional', t('spaces.identityOptional')],
            ['required', t('spaces.identityRequired')],
          ]),
        ),
        h('p', { class: 'muted' }, t('spaces.identityHint')),
      ),
      h(
        'fieldset',
        { class: 'card' },
        h('legend', {}, t('spaces.attachments')),
        h('label', { class: 'check' }, check('attachmentsAllowed', s.attachments.allowed), t('spaces.attachmentsAllowed')),
        h(
          'div',
          { class: 'inline-fields' },
          field(t('spaces.maxSize'), input('maxSizeMb', Math.round((s.attachments.maxSizeBytes / MB) * 10) / 10, { type: 'number', min: 0.1, step: 0.1 })),
          field(t('spaces.maxCount'), input('maxCount', s.attachments.maxCount, { type: 'number', min: 0, step: 1 })),
        ),
      ),
      assignmentFields(s),
      h(
        'fieldset',
        { class: 'card' },
        h('legend', {}, t('spaces.retention')),
        h(
          'div',
          { class: 'inline-fields' },
          field(t('spaces.expireAfter'), input('expireAfterMinutes', s.expireAfterMinutes, { type: 'number', min: 0, step: 1 }), t('spaces.expireHint')),
          field(t('spaces.retentionDays'), input('retentionDays', s.retentionDays, { type: 'number', min: 1, step: 1 })),
        ),
      ),
      h('div', { class: 'form-actions' }, this.status.el, h('button', { type: 'submit', class: 'btn btn--primary', dataset: { action: 'save-space' } }, t('common.save'))),
    );
    this.form.addEventListener('submit', (e) => {
      e.preventDefault();
      this.save();
    });
    this.form.addEventListener('input', () => this.changed());
    this.form.addEventListener('change', () => this.changed());

    this.embed = h('div', { class: 'card embed' });
    this.el = h(
      'div',
      { class: 'stack' },
      h('h2', { class: 'editor__title' }, space.name),
      this.embed,
      this.form,
      h(
        'div',
        { class: 'card danger' },
        h('h3', {}, t('spaces.danger')),
        h('button', { type: 'button', class: 'btn btn--danger', dataset: { action: 'delete-space' }, onclick: () => this.remove() }, t('spaces.delete')),
      ),
    );
    this.changed();
    this.loadEmbed();
  }

  addRange({ day, from, to }) {
    const daySelect = h(
      'select',
      { class: 'input input--sm', name: 'day', 'aria-label': t('spaces.day') },
      DAYS.map((d) => h('option', { value: String(d), selected: d === day }, weekday(d))),
    );
    const row = h(
      'div',
      { class: 'range' },
      daySelect,
      h('input', { class: 'input input--sm', type: 'time', name: 'from', value: from, 'aria-label': t('spaces.from') }),
      '–',
      h('input', { class: 'input input--sm', type: 'time', name: 'to', value: to === '24:00' ? '23:59' : to, 'aria-label': t('spaces.to') }),
      h(
        'button',
        {
          type: 'button',
          class: 'btn btn--ghost btn--sm',
          'aria-label': t('common.remove'),
          onclick: () => {
            row.remove();
            this.changed();
          },
        },
        '×',
      ),
    );
    this.ranges.append(row);
  }

  values() {
    const f = (name) => this.form.elements.namedItem(name);
    const num = (name) => Number(f(name).value);
    const ranges = [...this.ranges.querySelectorAll('.range')].map((r) => ({
      day: Number(r.querySelector('[name=day]').value),
      from: r.querySelector('[name=from]').value,
      to: r.querySelector('[name=to]').value,
    }));
    return {
      name: f('name').value,
      allowedDomains: domainsOf(f('allowedDomains').value),
      settings: {
        title: f('title').value,
        welcomeMessage: f('welcomeMessage').value,
        accentColor: f('accentColor').value,
        position: f('position').value,
        theme: f('theme').value,
        locale: f('locale').value,
        openingHours: this.alwaysOpen.checked ? null : { timezone: this.timezone.value, ranges },
        offlineMessages: f('offlineMessages').checked,
        csat: f('csat').checked,
        requireVisitorData: f('requireVisitorData').value,
        identityVerification: f('identityVerification').value,
        attachments: { allowed: f('attachmentsAllowed').checked, maxSizeBytes: Math.round(num('maxSizeMb') * MB), maxCount: num('maxCount') },
        expireAfterMinutes: num('expireAfterMinutes'),
        retentionDays: num('retentionDays'),
        ...assignmentValues(this.form),
        translations: translationsOf(f),
        headerAgents: f('teamAuto').checked ? null : [...new Set([1, 2, 3].map((n) => f('team' + n).value).filter(Boolean))],
      },
    };
  }

  changed() {
    const hoursOn = !this.alwaysOpen.checked;
    this.form.querySelector('.hours').hidden = !hoursOn;
    this.preview.update(this.values().settings);
  }

  async save() {
    try {
      const space = await patch(`/chat-spaces/${this.space.id}`, this.values());
      this.space = space;
      this.el.querySelector('.editor__title').textContent = space.name;
      this.status.ok(t('common.saved'));
      this.onSaved(space);
    } catch (e) {
      this.status.error(e);
    }
  }

  async loadEmbed() {
    try {
      this.renderEmbed(await get(`/chat-spaces/${this.space.id}/embed`));
    } catch (e) {
      mount(this.embed, h('p', { class: 'form-error' }, e.message));
    }
  }

  renderEmbed({ snippet, widgetKey }) {
    const copied = h('span', { class: 'form-status form-status--ok', role: 'status', hidden: true }, t('spaces.copied'));
    mount(
      this.embed,
      h('h3', {}, t('spaces.embed')),
      h('p', { class: 'muted' }, t('spaces.embedHint')),
      h('pre', { class: 'snippet' }, h('code', { class: 'snippet__code' }, snippet)),
      h(
        'div',
        { class: 'row-buttons' },
        h(
          'button',
          {
            type: 'button',
            class: 'btn btn--primary btn--sm',
            dataset: { action: 'copy-snippet' },
            onclick: async () => {
              copied.hidden = !(await copyText(snippet));
              setTimeout(() => (copied.hidden = true), 3000);
            },
          },
          t('spaces.copy'),
        ),
        copied,
        h('span', { class: 'muted key' }, t('spaces.key'), ' ', h('code', {}, widgetKey)),
        h('button', { type: 'button', class: 'btn btn--sm', dataset: { action: 'rotate-key' }, onclick: () => this.rotate() }, t('spaces.rotate')),
      ),
    );
  }

  async rotate() {
    if (!window.confirm(t('spaces.rotateConfirm'))) return;
    try {
      this.renderEmbed(await post(`/chat-spaces/${this.space.id}/rotate-key`));
    } catch (e) {
      this.status.error(e);
    }
  }

  async remove() {
    if (!window.confirm(t('spaces.deleteConfirm', { name: this.space.name }))) return;
    try {
      await del(`/chat-spaces/${this.space.id}`);
      this.onSaved(null);
    } catch (e) {
      this.status.error(e);
    }
  }
}
