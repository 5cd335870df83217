// The command center's board: counts of open cases, the warned cases by lateness, the case
// list, assessment charts and exports, hotspots, and live updates (server-sent events).
'use strict';

(() => {
  const { t, word, el, svg, clear, badge, when, named, caseLink, api } = GF;
  const COLOURS = ['green', 'yellow', 'orange', 'red'];
  const FILTERS = ['street', 'department', 'category', 'colour'];

  function filterQuery() {
    const form = document.getElementById('filters');
    const params = new URLSearchParams();
    for (const name of FILTERS) {
      const value = (form.elements[name].value || '').trim();
      if (value) params.set(name, value);
    }
    return params;
  }

  // {key: count} or [{key|code, name, count}] as [{key, name, count}].
  function pairs(x) {
    if (!x) return [];
    if (Array.isArray(x)) {
      return x.map((i) => ({ key: i.key ?? i.code ?? i.name, name: i.name ?? i.key ?? i.code,
                             count: i.count ?? i.open ?? i.total ?? 0 }));
    }
    return Object.entries(x).map(([k, v]) => (v !== null && typeof v === 'object'
      ? { key: k, name: v.name ?? k, count: v.count ?? v.open ?? 0 }
      : { key: k, name: k, count: v }));
  }

  function fillTable(id, rows) {
    const body = document.querySelector('#' + id + ' tbody');
    clear(body);
    for (const r of rows) body.append(el('tr', { 'data-key': r.key }, el('td', { text: r.name, title: r.key }), el('td', { text: String(r.count) })));
  }

  function fillList(id, values) {
    const list = document.getElementById(id);
    const known = new Set([...list.options].map((o) => o.value));
    for (const v of values) if (v && !known.has(v)) { list.append(el('option', { value: v })); known.add(v); }
  }

  function pie(container, counts) {
    clear(container);
    const total = counts.reduce((s, c) => s + c.count, 0);
    const chart = svg('svg', { viewBox: '-1.1 -1.1 2.2 2.2', width: 160, height: 160, role: 'img', 'aria-label': t('summary.title') });
    if (total === 0) {
      chart.append(svg('circle', { cx: 0, cy: 0, r: 1, fill: '#e5e7eb' }));
    } else {
      let angle = -Math.PI / 2;
      for (const c of counts) {
        if (!c.count) continue;
        const share = c.count / total;
        const fill = getComputedStyle(document.documentElement).getPropertyValue('--' + c.key).trim() || '#999';
        if (share >= 0.9999) {
          chart.append(svg('circle', { cx: 0, cy: 0, r: 1, fill, 'data-colour': c.key }));
          break;
        }
        const end = angle + share * 2 * Math.PI;
        const large = share > 0.5 ? 1 : 0;
        const d = `M0 0 L${Math.cos(angle)} ${Math.sin(angle)} A1 1 0 ${large} 1 ${Math.cos(end)} ${Math.sin(end)} Z`;
        chart.append(svg('path', { d, fill, 'data-colour': c.key }, svg('title', {}, `${word('colour', c.key)} ${c.count}`)));
        angle = end;
      }
    }
    container.append(chart);
  }

  async function loadSummary() {
    const panel = document.getElementById('summary-panel');
    const latePanel = document.getElementById('late-panel');
    const answer = await api('GET', '/api/v1/board/summary?' + filterQuery());
    const ok = answer.status === 200 && answer.data;
    GF.showUnavailable(panel, !ok);
    GF.showUnavailable(latePanel, !ok);
    if (!ok) return;
    const s = answer.data;
    const byColour = pairs(s.by_colour || s.colours || s.totals);
    const counts = COLOURS.map((c) => ({ key: c, count: (byColour.find((x) => x.key === c) || { count: 0 }).count }));
    const box = document.getElementById('colour-counts');
    clear(box);
    for (const c of counts) {
      box.append(el('div', { class: 'count c-' + c.key, 'data-colour': c.key }, el('b', { text: String(c.count) }), word('colour', c.key)));
    }
    pie(document.getElementById('colour-pie'), counts);
    const departments = pairs(s.by_department || s.departments);
    const streets = pairs(s.by_street || s.streets);
    fillTable('by-tier', pairs(s.by_tier || s.tiers).map((r) => ({ ...r, name: word('tier', r.key) })));
    fillTable('by-department', departments);
    fillTable('by-street', streets);
    fillList('departments', departments.map((d) => d.key));
    fillList('streets', streets.map((d) => d.key));
    const late = s.late || s.warned || s.warnings || s.cases || s.items || [];
    const body = document.querySelector('#late tbody');
    clear(body);
    if (!late.length) body.append(el('tr', {}, el('td', { colSpan: 5, class: 'muted', text: t('late.none') })));
    for (const c of late) {
      body.append(el('tr', { 'data-case-id': c.case_id, 'data-colour': c.colour || 'none' },
        el('td', {}, caseLink(c.case_id)), el('td', {}, badge(c.colour)),
        el('td', {}, named(c.category_name, c.category)),
        el('td', {}, named(c.handler_name, c.handler)), el('td', { text: when(c.due || c.due_at) })));
    }
  }

  async function loadCases() {
    const panel = document.getElementById('cases-panel');
    const params = filterQuery();
    params.set('sort', 'lateness');
    params.set('limit', '50');
    const answer = await api('GET', '/api/v1/cases?' + params);
    const ok = answer.status === 200 && answer.data && Array.isArray(answer.data.items);
    GF.showUnavailable(panel, !ok);
    const body = document.querySelector('#cases tbody');
    clear(body);
    if (!ok) {
      if (answer.status === 400) document.getElementById('cases-totals').textContent = GF.errorText(answer.data);
      return;
    }
    const totals = answer.data.totals || {};
    document.getElementById('cases-totals').textContent = t('cases.totals', { all: totals.all ?? answer.data.items.length });
    fillList('categories', answer.data.items.map((c) => c.category));
    for (const c of answer.data.items) {
      body.append(el('tr', { 'data-case-id': c.case_id, 'data-colour': c.colour || 'none' },
        el('td', {}, caseLink(c.case_id)), el('td', { text: word('status', c.status) }), el('td', {}, badge(c.colour)),
        el('td', {}, named(c.category_name, c.category)), el('td', {}, named(c.handler_name, c.handler)),
        el('td', { text: when(c.due) }), el('td', {}, named(c.street_name, c.street))));
    }
  }

  function bars(container, rows) {
    clear(container);
    const series = [
      ['rate.on_time', (r) => (r.closed ? (r.closed_on_time || 0) / r.closed : 0), '#2e9d4b'],
      ['rate.rework', (r) => r.rework_rate || 0, '#f07800'],
      ['rate.extension', (r) => r.extension_rate || 0, '#0b6ebd'],
    ];
    const rowHeight = 16 * series.length + 12;
    const width = 520, left = 140, span = width - left - 50;
    const chart = svg('svg', { viewBox: `0 0 ${width} ${Math.max(rowHeight * rows.length + 24, 40)}`, width, role: 'img' });
    series.forEach(([key, , colour], i) => {
      chart.append(svg('rect', { x: left + i * 130, y: 2, width: 10, height: 10, fill: colour }));
      chart.append(svg('text', { x: left + i * 130 + 14, y: 11, class: 'bar-label' }, t(key)));
    });
    rows.forEach((r, n) => {
      const top = 24 + n * rowHeight;
      chart.append(svg('text', { x: 0, y: top + 12, class: 'bar-label' }, String(r.name || r.key)));
      series.forEach(([key, value, colour], i) => {
        const v = Math.max(0, Math.min(1, Number(value(r)) || 0));
        chart.append(svg('rect', { x: left, y: top + i * 16, width: Math.max(v * span, 1), height: 12, fill: colour, 'data-key': r.key, 'data-series': key },
          svg('title', {}, `${t(key)} ${(v * 100).toFixed(1)}%`)));
        chart.append(svg('text', { x: left + v * span + 4, y: top + i * 16 + 10, class: 'bar-label' }, (v * 100).toFixed(0) + '%'));
      });
    });
    container.append(chart);
  }

  async function loadAssessment() {
    const form = document.getElementById('assessment-form');
    const panel = document.getElementById('assessment-panel');
    const params = new URLSearchParams();
    for (const name of ['by', 'from', 'to']) if (form.elements[name].value) params.set(name, form.elements[name].value);
    for (const format of ['csv', 'xlsx']) {
      const p = new URLSearchParams(params);
      p.set('format', format);
      document.getElementById('export-' + format).href = '/api/v1/assessment?' + p;
    }
    const answer = await api('GET', '/api/v1/assessment?' + params);
    const ok = answer.status === 200 && answer.data && Array.isArray(answer.data.rows);
    GF.showUnavailable(panel, !ok);
    if (ok) bars(document.getElementById('assessment-bars'), answer.data.rows);
    else clear(document.getElementById('assessment-bars'));
  }

  async function loadHotspots() {
    const panel = document.getElementById('hotspots-panel');
    const answer = await api('GET', '/api/v1/hotspots');
    const ok = answer.status === 200 && answer.data && Array.isArray(answer.data.items);
    GF.showUnavailable(panel, !ok);
    const list = document.getElementById('hotspots');
    clear(list);
    if (!ok) return;
    if (!answer.data.items.length) list.append(el('li', { class: 'muted', text: t('hotspots.none') }));
    for (const h of answer.data.items) {
      list.append(el('li', { 'data-hotspot': h.id },
        t('hotspot.text', { area: h.area_name || h.area_code, category: h.category_name || h.category, count: h.count, window: h.window_minutes, threshold: h.threshold }),
        ' ', ...(h.case_ids || []).slice(0, 5).map((id) => caseLink(id))));
    }
  }

  function showEvent(e) {
    const list = document.getElementById('live-events');
    const item = el('li', { 'data-case-id': e.case_id, 'data-colour': e.colour || 'none', 'data-kind': e.kind, 'data-status': e.status },
      badge(e.colour), ' ', caseLink(e.case_id), ' ',
      t('event.text', { case: '', kind: word('kind', e.kind), status: word('status', e.status), colour: word('colour', e.colour || 'none') }).replace(/^[:：]\s*/, ''),
      ' ', el('span', { class: 'muted', text: when(e.at) }));
    list.prepend(item);
    while (list.children.length > 100) list.lastChild.remove();
  }

  function refresh() {
    loadSummary();
    loadCases();
  }

  function start() {
    document.getElementById('board').classList.remove('hidden');
    const form = document.getElementById('filters');
    form.addEventListener('submit', (event) => { event.preventDefault(); refresh(); });
    form.addEventListener('reset', () => setTimeout(refresh, 0));
    document.getElementById('assessment-form').addEventListener('submit', (event) => { event.preventDefault(); loadAssessment(); });
    refresh();
    loadAssessment();
    loadHotspots();
    // A burst of changes is one reload of the figures.
    const later = GF.debounce(() => { refresh(); loadHotspots(); }, 500);
    GF.live((e) => { showEvent(e); later(); });
  }

  document.addEventListener('DOMContentLoaded', () => {
    GF.translate(document);
    GF.session(start);
  });
})();
