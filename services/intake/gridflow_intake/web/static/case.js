// One case: its reports, its place on a map of its grid (the jurisdiction's polygons, drawn as
// SVG: no tile server), why it went where it went, every assignment with its clock and colours,
// notifications, notes and comments, verification and evaluation, and the orders.
'use strict';

(() => {
  const { t, word, fieldName, fieldValue, el, svg, clear, badge, when, named, api } = GF;
  const caseId = decodeURIComponent(location.pathname.replace(/^\/cases\//, '').replace(/\/$/, ''));
  const NOTE_KINDS = new Set(['comment', 'note', 'order', 'supervise', 'supervised', 'commented']);
  const VERIFY_KINDS = new Set(['verified', 'verification_failed', 'evaluated']);

  function item(list, ...parts) { list.append(el('li', {}, ...parts)); }
  function empty(list, text) { if (!list.children.length) list.append(el('li', { class: 'muted', text: text || t('case.nothing') })); }

  function assisting(view) {
    const codes = view.assisting || [];
    const names = view.assisting_names || [];
    const box = el('span', { 'data-field': 'assisting' });
    codes.forEach((code, i) => box.append(...(i ? ['、'] : []), named(names[i], code)));
    if (!codes.length) box.textContent = '—';
    return box;
  }

  function facts(view) {
    const dl = document.getElementById('facts');
    clear(dl);
    const rows = [
      ['fact.status', el('span', { 'data-field': 'status', text: word('status', view.status) })],
      ['fact.colour', el('span', { 'data-field': 'colour' }, badge(view.colour))],
      ['fact.category', named(view.category_name, view.category, { 'data-field': 'category' })],
      ['fact.tier', word('tier', view.tier)],
      // The holder by name, its code beside it (what the orders' unit prompt takes).
      ['fact.holder', el('span', {},
        view.handler_name ? named(view.handler_name, view.handler, { 'data-field': 'holder-name' }) : '',
        view.handler_name ? ' ' : '',
        el('span', { 'data-field': 'holder', class: view.handler_name ? 'muted code' : null, text: view.handler || '—' }))],
      ['fact.lead', named(view.lead_name, view.lead, { 'data-field': 'lead' })],
      ['fact.assisting', assisting(view)],
      ['fact.area', named(view.area_name, view.area_code, { 'data-field': 'area' })],
      ['fact.registered', when(view.registered_at)],
      ['fact.due', when(view.due)],
      ['fact.escalations', String(view.escalations ?? 0)],
      ['fact.reporters', String(view.reporters ?? '—')],
      ['fact.satisfaction', view.satisfaction == null ? '—' : String(view.satisfaction)],
    ];
    for (const [key, value] of rows) dl.append(el('dt', { text: t(key) }), el('dd', {}, value));
    document.getElementById('description').textContent = view.description || '';
    document.getElementById('case-title').textContent = view.case_id;
    document.body.dataset.status = view.status;
    document.body.dataset.colour = view.colour || 'none';
  }

  function detailText(entry) {
    const skip = new Set(['at', 'kind', 'explanation']);
    return Object.entries(entry).filter(([k, v]) => !skip.has(k) && v !== null && v !== '' && !(Array.isArray(v) && !v.length))
      .map(([k, v]) => `${fieldName(k)}：${fieldValue(k, v)}`).join('，');
  }

  function sections(view) {
    const ids = ['reports', 'routing', 'assignments', 'notes', 'verification', 'timeline'];
    const lists = Object.fromEntries(ids.map((id) => [id, document.getElementById(id)]));
    Object.values(lists).forEach(clear);
    for (const r of view.reports || []) {
      const who = r.reporter ? [r.reporter.name, r.reporter.phone].filter(Boolean).join(' ') : '';
      item(lists.reports, el('b', { text: r.channel }), ' ', when(r.received_at), who ? ' · ' + who : '');
    }
    const ROUTING_KINDS = new Set(['registered', 'routed', 'dispatched', 'report_joined']);
    for (const e of view.timeline || []) {
      // A node lives in one place: each list gets its own heading of the entry.
      const head = () => [el('span', { class: 'muted', text: when(e.at) }), ' ', el('b', { text: word('kind', e.kind) }), ' '];
      lists.timeline.append(el('li', { 'data-kind': e.kind }, ...head(), detailText(e)));
      if (e.kind === 'routed') {
        const explanation = Array.isArray(e.explanation) ? e.explanation.join('；')
          : (typeof e.explanation === 'string' ? e.explanation : (e.explanation ? JSON.stringify(e.explanation) : ''));
        item(lists.routing, ...head(), `${e.handler || ''}（${word('tier', e.tier)}）`, el('br'), explanation);
      }
      if (e.kind === 'warning') item(lists.assignments, ...head(), badge(e.colour), ' ', detailText(e));
      else if (e.kind === 'dispatched' || e.kind === 'awaiting_order') item(lists.assignments, ...head(), detailText(e));
      const said = e.note || e.comment || (ROUTING_KINDS.has(e.kind) ? null : e.reason);
      if (said || NOTE_KINDS.has(e.kind)) item(lists.notes, ...head(), said || detailText(e));
      if (VERIFY_KINDS.has(e.kind)) item(lists.verification, ...head(), detailText(e));
    }
    for (const c of view.comment_list || []) item(lists.notes, el('b', { text: c.by || '' }), ' ', c.text || c.comment || JSON.stringify(c));
    empty(lists.reports);
    empty(lists.routing);
    empty(lists.assignments);
    empty(lists.notes);
    empty(lists.verification);
  }

  // The notices sent for the case, from the notification service's record (asked through
  // intake): when, what about, to whom (contacts come masked), by which channel, what became of it.
  async function drawNotifications() {
    const panel = document.getElementById('notifications-panel');
    const list = document.getElementById('notifications');
    const answer = await api('GET', '/api/v1/cases/' + encodeURIComponent(caseId) + '/notifications');
    GF.showUnavailable(panel, answer.status !== 200);
    clear(list);
    document.getElementById('notifications-more').classList.toggle('hidden', !(answer.status === 200 && answer.data.more));
    if (answer.status !== 200) { panel.dataset.count = ''; return; }
    for (const n of answer.data.items) {
      const r = n.recipient || {};
      const who = [r.name || r.person_id, word('role', r.role), r.unit_name || r.unit].filter((x) => x && x !== '—').join(' · ');
      list.append(el('li', { 'data-kind': n.kind, 'data-status': n.status },
        el('span', { class: 'muted', text: when(n.at) }), ' ',
        el('b', { text: word('notice', n.kind) }), ' → ', who,
        r.contact ? el('span', { class: 'muted', text: ' ' + r.contact }) : '',
        ' · ', word('channel', n.channel), ' · ', el('span', { 'data-field': 'status', text: word('nstatus', n.status) }),
        // The delivery log: each try's time, channel and outcome, in the title; its count shown.
        (n.attempts && n.attempts.length) ? el('span', {
          class: 'muted', 'data-field': 'attempts',
          text: ' · ' + n.attempts.length + ' ' + t('case.attempts'),
          title: n.attempts.map((a) => [when(a.at), word('channel', a.channel), word('noutcome', a.outcome), a.error || ''].join(' ')).join('\n'),
        }) : ''));
    }
    panel.dataset.count = String(answer.data.items.length);
    empty(list, t('case.no_notifications'));
  }

  async function drawPlace() {
    const panel = document.getElementById('map-panel');
    const box = document.getElementById('map');
    const answer = await api('GET', '/api/v1/cases/' + encodeURIComponent(caseId) + '/place');
    GF.showUnavailable(panel, answer.status !== 200);
    clear(box);
    if (answer.status !== 200) return;
    const place = answer.data;
    if (!place.area || !place.bbox) { box.append(el('p', { class: 'muted', text: t('case.no_place') })); return; }
    const [minLon, minLat, maxLon, maxLat] = place.bbox;
    // Longitude shrinks with latitude: x is scaled by cos(latitude) so the grid keeps its shape.
    const k = Math.cos(((minLat + maxLat) / 2) * Math.PI / 180);
    const w = (maxLon - minLon) * k, h = maxLat - minLat;
    const scale = 600 / Math.max(w, h, 1e-9);
    const x = (lon) => ((lon - minLon) * k * scale).toFixed(1);
    const y = (lat) => ((maxLat - lat) * scale).toFixed(1);
    const path = (rings) => rings.map((part) => part.map((ring) => 'M' + ring.map(([lon, lat]) => x(lon) + ' ' + y(lat)).join(' L') + ' Z').join(' ')).join(' ');
    const map = svg('svg', { viewBox: `-10 -10 ${(w * scale + 20).toFixed(0)} ${(h * scale + 20).toFixed(0)}`, role: 'img', 'aria-label': place.area.name });
    const centre = (rings) => {
      const ring = rings[0][0];
      const lon = ring.reduce((s, p) => s + p[0], 0) / ring.length, lat = ring.reduce((s, p) => s + p[1], 0) / ring.length;
      return [x(lon), y(lat)];
    };
    for (const n of place.neighbours) {
      map.append(svg('path', { d: path(n.rings), class: 'neighbour', 'data-area': n.code }, svg('title', {}, n.name)));
    }
    // A label that fits its area: grids of one community share its name, so a neighbour is
    // named by what tells it apart (第3网格), and the text shrinks to the area's width (the full
    // name is the area's tooltip).
    const widthOf = (rings) => {
      const xs = rings[0][0].map(([lon]) => Number(x(lon)));
      return Math.max(...xs) - Math.min(...xs);
    };
    const label = (rings, text, bold) => {
      const [cx, cy] = centre(rings);
      const size = Math.max(8, Math.min(16, (widthOf(rings) * 0.9) / Math.max(text.length, 1)));
      const attrs = { x: cx, y: cy, class: 'label', 'text-anchor': 'middle', 'font-size': size.toFixed(1) };
      if (bold) attrs['font-weight'] = 'bold';
      map.append(svg('text', attrs, text));
    };
    const shortName = (name) => {
      const at = name.lastIndexOf('社区');
      return at >= 0 && at + 2 < name.length ? name.slice(at + 2) : name;
    };
    for (const n of place.neighbours) label(n.rings, shortName(n.name), false);
    map.append(svg('path', { d: path(place.area.rings), class: 'area', 'data-area': place.area.code }, svg('title', {}, place.area.name)));
    label(place.area.rings, shortName(place.area.name), true);
    if (place.point) {
      map.append(svg('circle', { cx: x(place.point.lon), cy: y(place.point.lat), r: 8, class: 'point', 'data-point': 'case' }));
    }
    box.append(map);
  }

  async function load() {
    const answer = await api('GET', '/api/v1/cases/' + encodeURIComponent(caseId));
    if (answer.status !== 200) {
      document.getElementById('case').classList.add('hidden');
      document.getElementById('not-found').classList.remove('hidden');
      document.getElementById('not-found-detail').textContent = `${answer.status} · ${GF.errorText(answer.data)}`;
      document.body.dataset.loaded = String(answer.status);
      return false;
    }
    document.getElementById('not-found').classList.add('hidden');
    document.getElementById('case').classList.remove('hidden');
    facts(answer.data);
    sections(answer.data);
    document.body.dataset.loaded = '200';
    drawNotifications();
    return true;
  }

  async function order(kind) {
    const result = document.getElementById('order-result');
    const body = { kind };
    if (kind === 'assign') {
      const unit = prompt(t('order.unit'));
      if (!unit) { result.textContent = t('order.cancelled'); return; }
      body.unit = unit.trim();
    }
    const reason = prompt(t('order.reason'));
    if (reason === null) { result.textContent = t('order.cancelled'); return; }
    body.reason = reason;
    const answer = await api('POST', '/api/v1/cases/' + encodeURIComponent(caseId) + '/orders', body);
    result.dataset.status = String(answer.status);
    if (answer.status === 404 && answer.data && answer.data.errors && answer.data.errors.path) {
      result.textContent = t('order.unavailable');
      return;
    }
    if (answer.status >= 200 && answer.status < 300) {
      result.textContent = t('order.done') + '：' + word('order', kind);
      // The answer says what the order did; the page shows the case as it now is.
      await load();
      return;
    }
    result.textContent = `${answer.status} · ${GF.errorText(answer.data)}`;
  }

  async function start() {
    if (!(await load())) return;
    drawPlace();
    document.querySelectorAll('#orders button[data-order]').forEach((b) => b.addEventListener('click', () => order(b.dataset.order)));
    const later = GF.debounce(load, 300);
    GF.live((e) => { if (e.case_id === caseId) later(); });
  }

  document.addEventListener('DOMContentLoaded', () => {
    GF.translate(document);
    GF.session(start);
  });
})();
