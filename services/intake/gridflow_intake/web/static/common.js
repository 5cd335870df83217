// Gridflow's pages: what the board and the case page share. Plain JavaScript, no library, no
// build step; every figure comes from the API with the browser's session cookie, and every
// write carries the CSRF header copied from the (readable) CSRF cookie.
'use strict';

const GF = (() => {
  const STRINGS = {
    zh: {
      'board.title': '网格化指挥中心 · 四色预警看板', 'board.back': '← 看板',
      'signout': '退出', 'signin.title': '登录', 'signin.username': '用户名',
      'signin.password': '密码', 'signin.submit': '登录', 'signin.failed': '登录失败',
      'live.on': '实时更新已连接', 'live.off': '实时更新未连接', 'live.title': '实时动态',
      'f.street': '街道', 'f.department': '部门', 'f.category': '类别', 'f.colour': '颜色',
      'f.any': '全部', 'f.apply': '筛选', 'f.clear': '清除',
      'colour.green': '绿色', 'colour.yellow': '黄色', 'colour.orange': '橙色', 'colour.red': '红色',
      'colour.none': '无时限',
      'summary.title': '在办案件', 'summary.tier': '按层级', 'summary.department': '按部门',
      'summary.street': '按街道', 'late.title': '预警案件（按超时程度）', 'late.none': '暂无预警案件',
      'cases.title': '案件列表', 'cases.totals': '共 {all} 件',
      'col.case': '案件', 'col.colour': '颜色', 'col.category': '类别', 'col.holder': '承办',
      'col.due': '时限', 'col.status': '状态', 'col.street': '街道',
      'assessment.title': '考核', 'assessment.by': '维度', 'assessment.from': '从',
      'assessment.to': '至', 'assessment.show': '查看', 'export.csv': '导出 CSV',
      'export.xlsx': '导出 Excel', 'by.department': '部门', 'by.unit': '单位', 'by.street': '街道',
      'by.community': '社区', 'by.grid_worker': '网格员', 'rate.on_time': '按时办结率',
      'rate.rework': '返工率', 'rate.extension': '延期率',
      'hotspots.title': '热点告警', 'hotspots.none': '暂无热点',
      'hotspot.text': '{area}：{category} {count} 件（{window} 分钟内，阈值 {threshold}）',
      'unavailable': '此功能暂不可用', 'error': '出错了',
      'case.not_found': '找不到该案件', 'case.place': '位置', 'case.reports': '来源报告',
      'case.routing': '分派说明', 'case.assignments': '承办与时限', 'case.notifications': '通知',
      'case.notes': '备注与点评', 'case.verification': '核查与评价', 'case.timeline': '全部经过',
      'case.no_place': '该案件没有可绘制的位置', 'case.no_notifications': '暂无通知记录',
      'case.notifications_unavailable': '通知记录暂时无法获取，请稍后刷新',
      'case.notifications_more': '仅显示最近 200 条通知',
      'notice.dispatched': '派遣通知', 'notice.assisting': '协办通知', 'notice.undeliverable': '无法送达',
      'notice.awaiting_order': '待指令', 'notice.hotspot': '热点预警', 'notice.remind_handler': '时限提醒',
      'notice.supervise': '督办', 'notice.escalate': '升级', 'channel.sms': '短信',
      'nstatus.recorded': '已记录', 'nstatus.sent': '已发送', 'nstatus.failed': '发送失败',
      'nstatus.pending': '待发送', 'nstatus.expired': '已过期', 'nstatus.expanded': '已分发至各报告人',
      'notice.registered': '立案通知', 'notice.returned': '退回通知', 'notice.resident_registered': '告知报告人：已立案',
      'notice.resident_dispatched': '告知报告人：已派遣', 'notice.resident_resolved': '告知报告人：已办结',
      'notice.resident_evaluation': '邀请报告人评价', 'channel.email': '电子邮件', 'channel.wecom_robot': '企业微信群',
      'channel.webhook': '网络回调', 'channel.wechat_official': '微信公众号', 'case.attempts': '次尝试', 'noutcome.sent': '成功', 'noutcome.retry': '待重试',
      'noutcome.refused': '被拒收', 'noutcome.expanded': '已分发',
      'role.grid_worker': '网格员', 'role.community_staff': '社区工作人员',
      'role.street_duty': '街道值班', 'role.station_duty': '所站值班', 'role.bureau_duty': '部门值班',
      'role.command_duty': '指挥中心值班', 'role.leader': '领导',
      'case.nothing': '暂无',
      'fact.status': '状态', 'fact.colour': '颜色', 'fact.category': '类别', 'fact.tier': '层级',
      'fact.holder': '承办', 'fact.lead': '主办', 'fact.assisting': '协办', 'fact.area': '区域',
      'fact.registered': '立案时间', 'fact.due': '时限', 'fact.escalations': '上报次数',
      'fact.reporters': '报告人数', 'fact.satisfaction': '满意度',
      'orders.title': '指令', 'order.hold': '挂账', 'order.release': '取消挂账', 'order.assign': '指派',
      'order.escalate': '上报', 'order.reject': '不予立案', 'order.reopen': '重新办理',
      'order.supervise': '督办', 'order.comment': '点评', 'order.reason': '请填写理由：',
      'order.unit': '指派给哪个单位（单位代码）：', 'order.done': '指令已下达',
      'order.unavailable': '指令功能暂不可用', 'order.cancelled': '已取消',
      'status.registered': '已登记', 'status.dispatched': '已派遣', 'status.accepted': '已受理',
      'status.in_progress': '处理中', 'status.resolved': '已处置', 'status.closed': '已结案',
      'status.rejected': '不予立案', 'status.on_hold': '挂账', 'status.returned': '已退回',
      'kind.registered': '登记', 'kind.routed': '分派', 'kind.dispatched': '派遣',
      'kind.warning': '预警', 'kind.verified': '核查通过', 'kind.verification_failed': '核查未通过',
      'kind.evaluated': '评价', 'kind.report_joined': '合并报告', 'kind.awaiting_order': '等待指令',
      'kind.undeliverable': '无法送达', 'kind.accepted': '受理', 'kind.in_progress': '处理中',
      'kind.resolved': '处置完毕', 'kind.returned': '退回', 'kind.note': '备注', 'kind.order': '指令',
      'event.text': '{case}：{kind}，{status}，{colour}',
      'tier.community': '社区', 'tier.street': '街道', 'tier.district': '区', 'tier.none': '未定',
      // A timeline entry's details: its fields' names, and the words some of them hold.
      'field.handler': '承办', 'field.queue': '队列', 'field.colour': '颜色', 'field.action': '动作',
      'field.fraction': '时限进度', 'field.reason': '原因', 'field.tier': '层级', 'field.lead': '主办',
      'field.assisting': '协办', 'field.channel': '渠道', 'field.category': '类别',
      'field.classified': '自动分类', 'field.area_code': '区域', 'field.sender': '发送方',
      'field.note': '备注', 'field.order': '指令', 'field.by': '下达人', 'field.unit': '单位',
      'field.into': '并入', 'field.passed': '核查通过', 'field.satisfaction': '满意度',
      'field.role': '角色', 'field.hours': '延长小时', 'field.due': '时限', 'field.decision': '决定',
      'field.cause': '原因', 'field.status': '状态', 'field.case_id': '案件', 'field.delivery_id': '投递',
      'field.unit_name': '单位名称', 'field.adapter': '接入方式', 'field.detail': '详情',
      'action.remind_handler': '提醒承办人', 'action.supervise': '督办', 'action.escalate': '上报升级',
      'reason.new': '新案', 'reason.escalated': '升级', 'reason.returned': '退回重派',
      'reason.assigned': '指派', 'reason.reopened': '重新办理', 'reason.reclassified': '改类重派',
      'role.lead': '主办', 'role.assisting': '协办', 'role.holder': '承办',
      'yes': '是', 'no': '否',
    },
    en: {
      'board.title': 'Grid command center · four-colour board', 'board.back': '← Board',
      'signout': 'Sign out', 'signin.title': 'Sign in', 'signin.username': 'User name',
      'signin.password': 'Password', 'signin.submit': 'Sign in', 'signin.failed': 'Sign-in failed',
      'live.on': 'Live', 'live.off': 'Not live', 'live.title': 'Live updates',
      'f.street': 'Street', 'f.department': 'Department', 'f.category': 'Category',
      'f.colour': 'Colour', 'f.any': 'Any', 'f.apply': 'Filter', 'f.clear': 'Clear',
      'colour.green': 'green', 'colour.yellow': 'yellow', 'colour.orange': 'orange',
      'colour.red': 'red', 'colour.none': 'no clock',
      'summary.title': 'Open cases', 'summary.tier': 'By tier', 'summary.department': 'By department',
      'summary.street': 'By street', 'late.title': 'Warned cases, latest first',
      'late.none': 'No warned cases', 'cases.title': 'Cases', 'cases.totals': '{all} in all',
      'col.case': 'Case', 'col.colour': 'Colour', 'col.category': 'Category', 'col.holder': 'Holder',
      'col.due': 'Due', 'col.status': 'Status', 'col.street': 'Street',
      'assessment.title': 'Assessment', 'assessment.by': 'By', 'assessment.from': 'From',
      'assessment.to': 'To', 'assessment.show': 'Show', 'export.csv': 'Export CSV',
      'export.xlsx': 'Export Excel', 'by.department': 'department', 'by.unit': 'unit',
      'by.street': 'street', 'by.community': 'community', 'by.grid_worker': 'grid worker',
      'rate.on_time': 'closed on time', 'rate.rework': 'rework rate', 'rate.extension': 'extension rate',
      'hotspots.title': 'Hotspot alerts', 'hotspots.none': 'No hotspots',
      'hotspot.text': '{area}: {count} × {category} within {window} min (threshold {threshold})',
      'unavailable': 'Not available here yet', 'error': 'Something went wrong',
      'case.not_found': 'No such case', 'case.place': 'Place', 'case.reports': 'Reports',
      'case.routing': 'Why it went where it went', 'case.assignments': 'Assignments and clocks',
      'case.notifications': 'Notifications', 'case.notes': 'Notes and comments',
      'case.verification': 'Verification and evaluation', 'case.timeline': 'Everything that happened',
      'case.no_place': 'This case has no place to draw',
      'case.no_notifications': 'No notifications recorded',
      'case.notifications_unavailable': 'The notifications cannot be read just now; reload later',
      'case.notifications_more': 'Only the latest 200 notifications are shown',
      'notice.dispatched': 'dispatch notice', 'notice.assisting': 'asked to assist',
      'notice.undeliverable': 'undeliverable', 'notice.awaiting_order': 'awaiting an order',
      'notice.hotspot': 'hotspot alert', 'notice.remind_handler': 'deadline reminder',
      'notice.supervise': 'supervision', 'notice.escalate': 'escalation', 'channel.sms': 'SMS',
      'nstatus.recorded': 'recorded', 'nstatus.sent': 'sent', 'nstatus.failed': 'failed',
      'nstatus.pending': 'pending', 'nstatus.expired': 'expired', 'nstatus.expanded': 'sent on to each reporter',
      'notice.registered': 'registration notice', 'notice.returned': 'return notice',
      'notice.resident_registered': 'reporter told: registered', 'notice.resident_dispatched': 'reporter told: dispatched',
      'notice.resident_resolved': 'reporter told: resolved', 'notice.resident_evaluation': 'reporter asked to evaluate',
      'channel.email': 'e-mail', 'channel.wecom_robot': 'WeCom group', 'channel.webhook': 'webhook',
      'channel.wechat_official': 'WeChat', 'case.attempts': 'tries', 'noutcome.sent': 'sent', 'noutcome.retry': 'to retry',
      'noutcome.refused': 'refused', 'noutcome.expanded': 'sent on',
      'role.grid_worker': 'grid worker',
      'role.community_staff': 'community staff', 'role.street_duty': 'street duty',
      'role.station_duty': 'station duty', 'role.bureau_duty': 'department duty',
      'role.command_duty': 'command center duty', 'role.leader': 'leader',
      'case.nothing': 'None',
      'fact.status': 'Status', 'fact.colour': 'Colour', 'fact.category': 'Category', 'fact.tier': 'Tier',
      'fact.holder': 'Holder', 'fact.lead': 'Lead', 'fact.assisting': 'Assisting', 'fact.area': 'Area',
      'fact.registered': 'Registered', 'fact.due': 'Due', 'fact.escalations': 'Escalations',
      'fact.reporters': 'Reporters', 'fact.satisfaction': 'Satisfaction',
      'orders.title': 'Orders', 'order.hold': 'Long-term list', 'order.release': 'Take off the list',
      'order.assign': 'Assign', 'order.escalate': 'Escalate', 'order.reject': 'Refuse to register',
      'order.reopen': 'Reopen', 'order.supervise': 'Supervise', 'order.comment': 'Comment',
      'order.reason': 'Why?', 'order.unit': 'To which unit (its code)?', 'order.done': 'Order given',
      'order.unavailable': 'Orders are not available here yet', 'order.cancelled': 'Cancelled',
      'event.text': '{case}: {kind}, {status}, {colour}',
      'tier.community': 'community', 'tier.street': 'street', 'tier.district': 'district',
      'tier.none': 'not yet',
      'kind.registered': 'registered', 'kind.routed': 'routed', 'kind.dispatched': 'dispatched',
      'kind.warning': 'warning', 'kind.verified': 'verified',
      'kind.verification_failed': 'verification failed', 'kind.evaluated': 'evaluated',
      'kind.report_joined': 'report joined', 'kind.awaiting_order': 'awaiting an order',
      'kind.undeliverable': 'undeliverable', 'kind.accepted': 'accepted',
      'kind.in_progress': 'in progress', 'kind.resolved': 'resolved', 'kind.returned': 'returned',
      'kind.note': 'note', 'kind.order': 'order',
      'status.registered': 'registered', 'status.dispatched': 'dispatched',
      'status.accepted': 'accepted', 'status.in_progress': 'in progress',
      'status.resolved': 'resolved', 'status.closed': 'closed', 'status.rejected': 'refused',
      'status.on_hold': 'on the long-term list', 'status.returned': 'returned',
    },
  };

  function chosenLanguage() {
    const asked = new URLSearchParams(location.search).get('lang');
    if (asked === 'en' || asked === 'zh') {
      try { localStorage.setItem('gridflow-lang', asked); } catch (e) { /* private mode */ }
      return asked;
    }
    try { return localStorage.getItem('gridflow-lang') === 'en' ? 'en' : 'zh'; } catch (e) { return 'zh'; }
  }
  const lang = chosenLanguage();

  function t(key, values) {
    let text = (STRINGS[lang] && STRINGS[lang][key]) || STRINGS.zh[key] || key;
    for (const [k, v] of Object.entries(values || {})) text = text.split('{' + k + '}').join(String(v));
    return text;
  }
  // A timeline entry's field name: in Chinese from the table above, in English the key itself.
  function fieldName(key) {
    if (lang === 'en') return key.replace(/_/g, ' ');
    return STRINGS.zh['field.' + key] || key;
  }
  // A field's value in the page's language: the vocabulary words by what the field holds.
  const VALUE_WORDS = {
    colour: 'colour', tier: 'tier', status: 'status', order: 'order', action: 'action',
    reason: 'reason', role: 'role',
  };
  function fieldValue(key, value) {
    if (typeof value === 'boolean') return t(value ? 'yes' : 'no');
    if (key === 'fraction' && typeof value === 'number') return Math.round(value * 100) + '%';
    if (Array.isArray(value)) return value.map((v) => fieldValue(key, v)).join('、');
    if (value !== null && typeof value === 'object') return JSON.stringify(value);
    if (VALUE_WORDS[key]) return word(VALUE_WORDS[key], value);
    return String(value);
  }

  // A vocabulary word (a status, a timeline kind, a colour) in the page's language, else as is.
  function word(prefix, value) {
    if (value === null || value === undefined || value === '') return '—';
    const key = prefix + '.' + value;
    return (STRINGS[lang] && STRINGS[lang][key]) || STRINGS.zh[key] || String(value);
  }

  function translate(root) {
    document.documentElement.lang = lang === 'en' ? 'en' : 'zh-CN';
    root.querySelectorAll('[data-i18n]').forEach((e) => { e.textContent = t(e.dataset.i18n); });
    const toggle = document.getElementById('lang-toggle');
    if (toggle) {
      const params = new URLSearchParams(location.search);
      params.set('lang', lang === 'en' ? 'zh' : 'en');
      toggle.href = '?' + params.toString();
      toggle.textContent = lang === 'en' ? '中文' : 'English';
    }
  }

  function csrf() {
    const m = document.cookie.match(/(?:^|; )gridflow_csrf=([^;]*)/);
    return m ? decodeURIComponent(m[1]) : '';
  }

  // One call of the API: {status, data} (data: the JSON answer, or null).
  async function api(method, path, body) {
    const headers = { Accept: 'application/json' };
    const options = { method, headers, credentials: 'same-origin', signal: AbortSignal.timeout(15000) };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      options.body = JSON.stringify(body);
    }
    if (method !== 'GET') headers['X-CSRF-Token'] = csrf();
    let response;
    try {
      response = await fetch(path, options);
    } catch (e) {
      return { status: 0, data: null };
    }
    let data = null;
    try { data = await response.json(); } catch (e) { data = null; }
    return { status: response.status, data };
  }

  // The refusal's messages, one line: "field: message; ...".
  function errorText(data) {
    const errors = (data && data.errors) || {};
    const parts = [];
    for (const [field, messages] of Object.entries(errors)) {
      parts.push(field + ': ' + (Array.isArray(messages) ? messages.join(', ') : JSON.stringify(messages)));
    }
    return parts.join('; ') || t('error');
  }

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined) continue;
      if (k === 'class') e.className = v;
      else if (k === 'text') e.textContent = v;
      else if (k.startsWith('data-')) e.setAttribute(k, v);
      else e[k] = v;
    }
    for (const c of children) if (c !== null && c !== undefined) e.append(c);
    return e;
  }
  const SVG_NS = 'http://www.w3.org/2000/svg';
  function svg(tag, attrs, ...children) {
    const e = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) if (v !== null && v !== undefined) e.setAttribute(k, v);
    for (const c of children) if (c !== null && c !== undefined) e.append(c);
    return e;
  }
  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }

  function badge(colour) {
    const c = colour || 'none';
    return el('span', { class: 'badge c-' + c, 'data-colour': c, text: word('colour', c) });
  }
  function when(iso) {
    if (!iso) return '—';
    // Shown as the city's clocks show it: the API's instants carry the city's offset already.
    return String(iso).replace('T', ' ').replace(/(:\d\d)(\.\d+)?([+-]\d\d:\d\d|Z)$/, '$1');
  }
  // A code as a reader wants it: its name (the jurisdiction's), the code as the tooltip; the
  // code itself where the jurisdiction gave no name.
  function named(name, code, attrs) {
    return el('span', { ...(attrs || {}), title: code || null, 'data-code': code || null, text: name || code || '—' });
  }
  function caseLink(caseId) {
    const a = el('a', { href: '/cases/' + encodeURIComponent(caseId) + (lang === 'en' ? '?lang=en' : ''), text: caseId });
    a.setAttribute('data-case-link', caseId);
    return a;
  }
  function debounce(fn, ms) {
    let timer = null;
    return (...args) => { clearTimeout(timer); timer = setTimeout(() => fn(...args), ms); };
  }
  function showUnavailable(panel, unavailable) {
    const note = panel.querySelector('.unavailable');
    if (note) note.classList.toggle('hidden', !unavailable);
    panel.dataset.available = unavailable ? 'no' : 'yes';
  }

  // Who is signed in (GET /api/v1/me), or null: then the sign-in form is shown, and
  // onSignedIn(me) runs once the person has signed in.
  async function session(onSignedIn) {
    const form = document.getElementById('signin-form');
    const signin = document.getElementById('signin');
    const me = await api('GET', '/api/v1/me');
    if (me.status === 200) {
      showWho(me.data);
      onSignedIn(me.data);
      return;
    }
    signin.classList.remove('hidden');
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      const fields = new FormData(form);
      const answer = await api('POST', '/api/v1/session', {
        username: fields.get('username'), password: fields.get('password'),
      });
      if (answer.status !== 200) {
        document.getElementById('signin-error').textContent = t('signin.failed') + ': ' + errorText(answer.data);
        return;
      }
      form.reset();
      signin.classList.add('hidden');
      const now = await api('GET', '/api/v1/me');
      showWho(now.data);
      onSignedIn(now.data);
    });
  }
  function showWho(me) {
    const who = document.getElementById('who');
    if (who && me) {
      who.textContent = (me.display_name || me.name) + ' · ' + (me.role || me.kind);
      who.dataset.role = me.role || '';
    }
    const out = document.getElementById('sign-out');
    if (out) {
      out.classList.remove('hidden');
      out.addEventListener('click', async () => {
        await api('DELETE', '/api/v1/session');
        location.reload();
      }, { once: true });
    }
  }

  // The board's live feed: onEvent(data) for each change of a case the caller may read. The
  // browser reconnects by itself (the server ends each stream after a while) with the last id.
  function live(onEvent) {
    const state = document.getElementById('live-state');
    const source = new EventSource('/api/v1/board/events');
    const mark = (on) => {
      if (!state) return;
      state.className = 'live ' + (on ? 'on' : 'off');
      state.textContent = t(on ? 'live.on' : 'live.off');
      state.dataset.live = on ? 'on' : 'off';
    };
    source.addEventListener('open', () => mark(true));
    source.addEventListener('error', () => mark(false));
    source.addEventListener('case', (event) => {
      let data;
      try { data = JSON.parse(event.data); } catch (e) { return; }
      onEvent(data);
    });
    return source;
  }

  return { t, word, fieldName, fieldValue, lang, translate, api, errorText, el, svg, clear, badge, when, named,
           caseLink, debounce, showUnavailable, session, live };
})();
