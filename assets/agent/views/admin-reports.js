// Admin: reports — conversations, messages, first response and resolution
// times, CSAT for a date range, a space, a team or an agent; charts by day
// drawn here as SVG; the same days as CSV.

import { blob, get, qs } from '../api.js';
import { field, h, mount } from '../dom.js';
import { t } from '../i18n.js';
import { statusLine } from './status-line.js';

const SVG = 'http://www.w3.org/2000/svg';

/** An SVG element; attributes set one by one, text as a Text node. */
function s(tag, attrs, text) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v != null) el.setAttribute(k, String(v));
  if (text != null) el.textContent = String(text);
  return el;
}

/** "45 s", "12 min", "3 h 5 min", "2 d 4 h"; "—" without a value. */
export function duration(secs) {
  if (secs == null) return '—';
  if (secs < 60) return `${secs} s`;
  const min = Math.round(secs / 60);
  if (min < 60) return `${min} min`;
  const hours = Math.floor(min / 60);
  if (hours < 48) return min % 60 ? `${hours} h ${min % 60} min` : `${hours} h`;
  const days = Math.floor(hours / 24);
  return hours % 24 ? `${days} d ${hours % 24} h` : `${days} d`;
}

const isoDay = (d) => d.toISOString().slice(0, 10);

/**
 * A bar chart of `values` (one per day; null is no bar) labelled by
 * `labels`, with the largest value marked on the axis.
 */
function barChart(title, labels, values, format) {
  const width = 640;
  const height = 160;
  const pad = { left: 44, right: 8, top: 10, bottom: 22 };
  const plotW = width - pad.left - pad.right;
  const plotH = height - pad.top - pad.bottom;
  const max = Math.max(1, ...values.map((v) => v || 0));
  const step = plotW / Math.max(1, values.length);
  const svg = s('svg', { viewBox: `0 0 ${width} ${height}`, class: 'chart__svg', role: 'img', 'aria-label': title });
  svg.append(
    s('line', { x1: pad.left, y1: pad.top + plotH, x2: width - pad.right, y2: pad.top + plotH, class: 'chart__axis' }),
    s('text', { x: pad.left - 6, y: pad.top + 8, 'text-anchor': 'end', class: 'chart__label' }, format(max)),
    s('text', { x: pad.left - 6, y: pad.top + plotH, 'text-anchor': 'end', class: 'chart__label' }, format(0)),
  );
  values.forEach((v, i) => {
    const x = pad.left + i * step + step * 0.15;
    if (v) {
      const barH = (v / max) * plotH;
      const bar = s('rect', { x, y: pad.top + plotH - barH, width: Math.max(1, step * 0.7), height: barH, class: 'chart__bar' });
      bar.append(s('title', {}, `${labels[i]}: ${format(v)}`));
      svg.append(bar);
    }
    // A date under the first, the last and about every seventh bar.
    if (i === 0 || i === values.length - 1 || (values.length > 14 && i % 7 === 0)) {
      svg.append(s('text', { x: x + step * 0.35, y: height - 6, 'text-anchor': 'middle', class: 'chart__label' }, labels[i].slice(5)));
    }
  });
  return h('figure', { class: 'chart card' }, h('figcaption', { class: 'chart__title' }, title), svg);
}

export class ReportsPage {
  constructor(root) {
    this.status = statusLine();
    this.tiles = h('div', { class: 'tiles', dataset: { part: 'report-totals' } });
    this.charts = h('div', { class: 'stack' });
    const today = new Date();
    const from = new Date(today.getTime() - 29 * 86400000);
    const select = (name) => h('select', { class: 'input', name }, h('option', { value: '' }, t('reports.any')));
    this.form = h(
      'form',
      { class: 'card inline-form', dataset: { form: 'report-filter' } },
      h(
        'div',
        { class: 'inline-fields' },
        field(t('reports.from'), h('input', { class: 'input', name: 'from', type: 'date', value: isoDay(from), required: true })),
        field(t('reports.to'), h('input', { class: 'input', name: 'to', type: 'date', value: isoDay(today), required: true })),
        field(t('reports.space'), select('chatSpaceId')),
        field(t('reports.team'), select('teamId')),
        field(t('reports.agent'), select('agentId')),
      ),
      h('button', { class: 'btn btn--primary', type: 'submit' }, t('reports.show')),
      h('button', { class: 'btn', type: 'button', dataset: { action: 'report-csv' }, onclick: () => this.csv() }, t('reports.csv')),
    );
    this.form.addEventListener('submit', (e) => {
      e.preventDefault();
      this.load();
    });
    mount(root, h('div', { class: 'stack reports' }, this.form, this.status.el, this.tiles, this.charts));
    this.options();
    this.load();
  }

  destroy() {}

  /** Fills the space, team and agent pickers. */
  async options() {
    const fill = (name, items, label) => {
      const sel = this.form.elements.namedItem(name);
      sel.append(...items.map((i) => h('option', { value: i.id }, label(i))));
    };
    try {
      const [spaces, teams, agents] = await Promise.all([get('/chat-spaces'), get('/teams'), get('/agents')]);
      const list = (r) => (Array.isArray(r) ? r : r.items || []);
      fill('chatSpaceId', list(spaces), (x) => x.name);
      fill('teamId', list(teams), (x) => x.name);
      fill('agentId', list(agents), (x) => x.displayName || x.email);
    } catch (e) {
      this.status.error(e.message);
    }
  }

  query(format) {
    const f = this.form.elements;
    const value = (n) => f.namedItem(n).value || null;
    return qs({ from: value('from'), to: value('to'), chatSpaceId: value('chatSpaceId'), teamId: value('teamId'), agentId: value('agentId'), format });
  }

  async load() {
    try {
      const r = await get(`/reports/summary${this.query(null)}`);
      this.status.el.hidden = true;
      this.render(r);
    } catch (e) {
      this.status.error(e.message);
    }
  }

  async csv() {
    try {
      const data = await blob(`/reports/summary${this.query('csv')}`);
      const url = URL.createObjectURL(data);
      const a = h('a', { href: url, download: 'mychat-report.csv', hidden: true });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
    } catch (e) {
      this.status.error(e.message);
    }
  }

  render(r) {
    const tile = (key, value, sub) =>
      h('div', { class: 'tile card', dataset: { metric: key } }, h('span', { class: 'tile__label' }, t(`reports.${key}`)), h('strong', { class: 'tile__value' }, value), sub ? h('small', { class: 'muted' }, sub) : null);
    const p90 = (x) => `p90 ${duration(x.p90)}`;
    mount(
      this.tiles,
      tile('conversations', r.conversations),
      tile('messages', r.messages),
      tile('firstResponse', duration(r.firstResponseSeconds.median), p90(r.firstResponseSeconds)),
      tile('resolution', duration(r.resolutionSeconds.median), p90(r.resolutionSeconds)),
      tile('csat', r.csat.average == null ? '—' : r.csat.average.toFixed(2), t('reports.ratings', { n: r.csat.count })),
    );
    const labels = r.byDay.map((d) => d.date);
    const count = (v) => String(Math.round(v));
    mount(
      this.charts,
      barChart(t('reports.conversationsByDay'), labels, r.byDay.map((d) => d.conversations), count),
      barChart(t('reports.firstResponseByDay'), labels, r.byDay.map((d) => d.firstResponseSeconds.median), duration),
      barChart(t('reports.csatByDay'), labels, r.byDay.map((d) => d.csat.average), (v) => (v ? v.toFixed(1) : '0')),
    );
  }
}
