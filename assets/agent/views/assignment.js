// The "Assignment" part of a chat space's settings: manual or
// round-robin, the responsible agent (default assignee), and the
// description the widget shows under its title.

import { field, h } from '../dom.js';
import { t } from '../i18n.js';
import '../i18n-desk.js';
import { state } from '../store.js';

/** The fieldset for `settings`. */
export function assignmentFields(s) {
  const agents = state.agents.filter((a) => !a.disabled && !a.invitePending);
  return h(
    'fieldset',
    { class: 'card' },
    h('legend', {}, t('assign.legend')),
    field(t('assign.description'), h('input', { class: 'input', name: 'description', maxlength: 300, value: s.description || '' })),
    field(
      t('assign.mode'),
      h(
        'select',
        { class: 'input', name: 'assignment' },
        h('option', { value: 'manual', selected: s.assignment !== 'round-robin' }, t('assign.manual')),
        h('option', { value: 'round-robin', selected: s.assignment === 'round-robin' }, t('assign.roundRobin')),
      ),
    ),
    field(
      t('assign.default'),
      h(
        'select',
        { class: 'input', name: 'defaultAssignee' },
        h('option', { value: '' }, t('assign.defaultNone')),
        agents.map((a) => h('option', { value: a.id, selected: a.id === s.defaultAssignee }, a.displayName)),
      ),
      t('assign.defaultHint'),
    ),
  );
}

/** The settings the fieldset holds, read from `form`. */
export function assignmentValues(form) {
  const f = (name) => form.elements.namedItem(name);
  return {
    description: f('description').value,
    assignment: f('assignment').value,
    defaultAssignee: f('defaultAssignee').value || null,
  };
}

/** An agent's `maxConcurrent` (0: no limit), saved on change by admins. */
export function capacityInput(agent, admin, save) {
  const input = h('input', { class: 'input input--sm', type: 'number', min: 0, max: 1000, step: 1, value: String(agent.maxConcurrent || 0), disabled: !admin, title: t('agents.capacityHint'), 'aria-label': `${t('agents.capacity')} ${agent.displayName}`, dataset: { capacity: agent.id } });
  input.addEventListener('change', () => save(Math.max(0, Math.floor(Number(input.value) || 0))));
  return input;
}
