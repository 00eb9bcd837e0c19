/**
 * The inspector's page: one self-contained HTML document (inline CSS and JS, no external
 * assets, no framework). It subscribes to `/events` (Server-Sent Events, one state JSON
 * every 500 ms) and falls back to polling `/state` every 500 ms when EventSource fails.
 * Everything from the runtime is put in the page with `textContent`, never as HTML.
 * (The script below avoids backticks and dollar-brace so it can live in this template.)
 * @packageDocumentation
 */
export const INSPECTOR_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>edgeless inspector</title>
<style>
  :root { --fg:#1d2330; --muted:#687086; --line:#d8dce6; --bg:#f6f7fa; --card:#fff; --ok:#2e7d32; --warn:#c77700; --bad:#c62828; --info:#1565c0; }
  * { box-sizing: border-box; }
  body { margin:0; font:13px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color:var(--fg); background:var(--bg); }
  header { display:flex; align-items:baseline; gap:16px; padding:10px 18px; background:#1d2330; color:#fff; }
  header h1 { font-size:16px; margin:0; font-weight:600; letter-spacing:.2px; }
  header .meta { color:#b8c0d4; font-size:12px; }
  header .conn { margin-left:auto; font-size:12px; padding:2px 8px; border-radius:10px; background:#38415a; }
  header .conn.live { background:#2e7d32; }
  header .conn.poll { background:#1565c0; }
  header .conn.down { background:#c62828; }
  main { display:grid; grid-template-columns: minmax(0, 3fr) minmax(300px, 2fr); gap:14px; padding:14px 18px; }
  section { background:var(--card); border:1px solid var(--line); border-radius:8px; padding:10px 12px; min-width:0; }
  section h2 { font-size:13px; margin:0 0 8px; color:var(--muted); font-weight:600; text-transform:uppercase; letter-spacing:.6px; }
  .wide { grid-column: 1 / -1; }
  .totals { display:flex; gap:18px; flex-wrap:wrap; }
  .totals div { font-size:12px; color:var(--muted); }
  .totals b { display:block; font-size:20px; color:var(--fg); font-variant-numeric: tabular-nums; }
  .graph h3 { font-size:13px; margin:6px 0 2px; }
  .graph h3 small { color:var(--muted); font-weight:400; }
  svg.wf { display:block; max-width:100%; height:auto; }
  svg .node rect { stroke-width:2; }
  svg .node.busy rect { stroke-width:3.5; }
  svg .node.resource rect { stroke-dasharray:6 3; }
  svg .node text { font-size:12px; fill:var(--fg); }
  svg .node .n-name { font-weight:700; font-size:13px; }
  svg .node .n-class { fill:var(--muted); font-size:11px; }
  svg .node.pulse rect { animation: pulse .6s ease-out; }
  svg .node.alert rect { stroke-width:3.5; filter: drop-shadow(0 0 4px rgba(198,40,40,.45)); }
  svg .node .n-alert { font-size:11px; font-weight:700; fill:var(--bad); }
  tr.alert td { background:#fdeaea; }
  .totals div.alert b { color:var(--bad); }
  @keyframes pulse { from { filter: drop-shadow(0 0 6px #42a5f5); } to { filter:none; } }
  svg .edge path { fill:none; stroke:#7a8299; stroke-width:1.6; }
  svg .edge rect { fill:#fff; stroke:#d0d4de; }
  svg .edge text { font-size:11px; fill:#3b4256; }
  table { width:100%; border-collapse:collapse; font-size:12px; }
  th, td { text-align:left; padding:4px 6px; border-bottom:1px solid #eef0f5; white-space:nowrap; }
  th { color:var(--muted); font-weight:600; }
  td.num, th.num { text-align:right; font-variant-numeric: tabular-nums; }
  td.err { white-space:normal; color:var(--bad); max-width:320px; }
  .st { display:inline-block; padding:0 7px; border-radius:9px; color:#fff; font-size:11px; }
  ul.feed { list-style:none; margin:0; padding:0; max-height:300px; overflow:auto; font:12px/1.45 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
  ul.feed li { padding:2px 0; border-bottom:1px dotted #eceef3; word-break:break-word; }
  ul.feed .t { color:var(--muted); }
  ul.feed .who { font-weight:700; }
  .lvl-error { color:var(--bad); } .lvl-warn { color:var(--warn); } .lvl-debug, .lvl-trace { color:var(--muted); }
  .empty { color:var(--muted); font-style:italic; }
</style>
</head>
<body>
<header><h1>edgeless inspector</h1><span class="meta" id="meta">connecting…</span><span class="conn" id="conn">connecting</span></header>
<svg width="0" height="0" style="position:absolute" aria-hidden="true"><defs>
  <marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#7a8299"></path></marker>
</defs></svg>
<main>
  <section class="wide"><h2>Totals</h2><div class="totals" id="totals"></div></section>
  <section class="wide graph"><h2>Workflows</h2><div id="graphs"><p class="empty">Nothing runs.</p></div></section>
  <section class="wide"><h2>Instances</h2><table id="instances"><thead><tr>
    <th>name</th><th>graph</th><th>kind</th><th>status</th><th class="num">mailbox</th><th class="num">messages</th><th class="num">msg/s</th><th class="num">restarts</th><th class="num">crashes</th><th class="num">timers</th><th>waiting on</th><th>last error</th>
  </tr></thead><tbody></tbody></table></section>
  <section><h2>Recent logs</h2><ul class="feed" id="logs"></ul></section>
  <section><h2>Crashes</h2><ul class="feed" id="crashes"></ul></section>
  <section><h2>Functions (latency p50 / p99)</h2><table id="functions"><thead><tr>
    <th>function</th><th class="num">casts</th><th class="num">cast p50</th><th class="num">cast p99</th><th class="num">calls</th><th class="num">call p50</th><th class="num">call p99</th><th class="num">dead letters</th>
  </tr></thead><tbody></tbody></table></section>
  <section><h2>Activity</h2><ul class="feed" id="activity"></ul></section>
</main>
<script>
(function () {
  'use strict';
  var SVG = 'http://www.w3.org/2000/svg';
  var W = 184, H = 74, COLW = 270, ROWH = 112, PAD = 24;
  var COLORS = { starting:'#1565c0', running:'#2e7d32', crashed:'#c62828', restarting:'#c77700', failed:'#8e0000', hibernating:'#5e35b1', hibernated:'#7e57c2', activating:'#1565c0', stopping:'#687086', stopped:'#9aa1b2' };
  // States that mean trouble: shown loudly (red ring, a label with the last error), not just tinted.
  var ALERT = { crashed:1, restarting:1, failed:1 };
  var TINTS = { starting:'#e8f0fb', running:'#eaf5ea', crashed:'#fdeaea', restarting:'#fff4e0', failed:'#f7e1e1', hibernating:'#efe9fa', hibernated:'#efe9fa', activating:'#e8f0fb', stopping:'#f0f1f4', stopped:'#f0f1f4' };
  var lastMessages = {};

  function h(tag, attrs, text) {
    var e = document.createElement(tag);
    for (var k in attrs || {}) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = String(text);
    return e;
  }
  function s(tag, attrs, text) {
    var e = document.createElementNS(SVG, tag);
    for (var k in attrs || {}) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = String(text);
    return e;
  }
  function clock(t) { var d = new Date(t); return d.toLocaleTimeString([], { hour12:false }) + '.' + String(d.getMilliseconds()).padStart(3, '0'); }
  function dur(sec) {
    if (!sec) return '–';
    if (sec < 0.001) return (sec * 1e6).toFixed(0) + ' µs';
    if (sec < 1) return (sec * 1e3).toFixed(sec < 0.01 ? 2 : 1) + ' ms';
    return sec.toFixed(2) + ' s';
  }
  function fmtRate(r) { return r >= 100 ? r.toFixed(0) : r.toFixed(1); }

  /** Columns by depth along the output mappings (longest path from the sources; cycles bounded). */
  function layout(nodes, edges) {
    var idx = {}, depth = [], n = nodes.length, i, it;
    for (i = 0; i < n; i++) { idx[nodes[i].name] = i; depth.push(0); }
    for (it = 0; it < n; it++) {
      var changed = false;
      for (i = 0; i < edges.length; i++) {
        var u = idx[edges[i].from], v = idx[edges[i].to];
        if (u === undefined || v === undefined || u === v) continue;
        if (depth[v] < depth[u] + 1 && depth[u] + 1 < n) { depth[v] = depth[u] + 1; changed = true; }
      }
      if (!changed) break;
    }
    var rows = {}, pos = {}, cols = 0, maxRows = 0;
    for (i = 0; i < n; i++) {
      var c = depth[i], r = rows[c] || 0;
      rows[c] = r + 1;
      pos[nodes[i].name] = { x: PAD + c * COLW, y: PAD + r * ROWH, col: c, row: r };
      cols = Math.max(cols, c + 1); maxRows = Math.max(maxRows, r + 1);
    }
    // Room below the nodes only for edges that loop back (drawn as arcs under them).
    var below = 0;
    for (i = 0; i < edges.length; i++) {
      var a = pos[edges[i].from], b = pos[edges[i].to];
      if (a && b && b.col <= a.col) below = 60;
    }
    return { pos: pos, width: PAD * 2 + (cols - 1) * COLW + W + 40, height: PAD * 2 + (maxRows - 1) * ROWH + H + below };
  }

  function drawGraph(g) {
    var L = layout(g.nodes, g.edges);
    var svg = s('svg', { 'class':'wf', viewBox:'0 0 ' + L.width + ' ' + L.height, width:L.width, height:L.height, 'data-graph':g.name });
    g.edges.forEach(function (e) {
      var a = L.pos[e.from], b = L.pos[e.to];
      if (!a || !b) return;
      var d, lx, ly;
      if (e.from === e.to) {
        var sx = a.x + W - 30, sy = a.y + H;
        d = 'M' + sx + ',' + sy + ' C' + (sx + 10) + ',' + (sy + 46) + ' ' + (a.x + W + 44) + ',' + (a.y + H / 2) + ' ' + (a.x + W) + ',' + (a.y + H / 2);
        lx = a.x + W + 14; ly = a.y + H + 22;
      } else if (b.col > a.col) {
        var x1 = a.x + W, y1 = a.y + H / 2, x2 = b.x, y2 = b.y + H / 2, k = Math.max(40, (x2 - x1) / 2);
        d = 'M' + x1 + ',' + y1 + ' C' + (x1 + k) + ',' + y1 + ' ' + (x2 - k) + ',' + y2 + ' ' + x2 + ',' + y2;
        lx = (x1 + x2) / 2; ly = (y1 + y2) / 2;
      } else {
        var bx1 = a.x + W / 2, by1 = a.y + H, bx2 = b.x + W / 2, by2 = b.y + H, dip = Math.max(by1, by2) + 46;
        d = 'M' + bx1 + ',' + by1 + ' C' + bx1 + ',' + dip + ' ' + bx2 + ',' + dip + ' ' + bx2 + ',' + by2;
        lx = (bx1 + bx2) / 2; ly = dip - 10;
      }
      var eg = s('g', { 'class':'edge', 'data-from':e.from, 'data-to':e.to, 'data-alias':e.alias });
      eg.appendChild(s('path', { d:d, 'marker-end':'url(#arrow)' }));
      var tw = 8 + e.alias.length * 6.4;
      eg.appendChild(s('rect', { x:lx - tw / 2, y:ly - 9, width:tw, height:17, rx:4 }));
      eg.appendChild(s('text', { x:lx, y:ly + 4, 'text-anchor':'middle', 'class':'e-alias' }, e.alias));
      svg.appendChild(eg);
    });
    g.nodes.forEach(function (n) {
      var p = L.pos[n.name];
      var key = g.id + '/' + n.id;
      var changed = lastMessages[key] !== undefined && lastMessages[key] !== n.messages;
      lastMessages[key] = n.messages;
      var cls = 'node ' + n.kind + (n.busy ? ' busy' : '') + (changed ? ' pulse' : '') + (ALERT[n.status] ? ' alert' : '');
      var ng = s('g', { 'class':cls, transform:'translate(' + p.x + ',' + p.y + ')', 'data-name':n.name, 'data-status':n.status, 'data-messages':n.messages, 'data-mailbox':n.mailbox });
      ng.appendChild(s('rect', { width:W, height:H, rx:10, fill:TINTS[n.status] || '#fff', stroke:COLORS[n.status] || '#888' }));
      ng.appendChild(s('circle', { cx:W - 14, cy:14, r:5, fill:COLORS[n.status] || '#888' }));
      ng.appendChild(s('text', { x:10, y:19, 'class':'n-name' }, n.name));
      ng.appendChild(s('text', { x:10, y:34, 'class':'n-class' }, (n.classType ? n.classType + ' · ' : '') + n.kind));
      ng.appendChild(s('text', { x:10, y:50, 'class':'n-status' }, n.status + ' · mailbox ' + n.mailbox));
      ng.appendChild(s('text', { x:10, y:66, 'class':'n-msgs' }, n.messages + ' msgs · ' + fmtRate(n.rate) + '/s' + (n.restarts ? ' · ' + n.restarts + ' restarts' : '')));
      if (ALERT[n.status]) {
        var said = n.status.toUpperCase() + (n.lastError ? ': ' + n.lastError : '');
        ng.appendChild(s('text', { x:10, y:H + 14, 'class':'n-alert' }, said.length > 48 ? said.slice(0, 47) + '…' : said));
      }
      var title = s('title', {}, n.name + ' (' + n.id + ')' + (n.lastError ? '\\nlast error: ' + n.lastError : ''));
      ng.appendChild(title);
      svg.appendChild(ng);
    });
    return svg;
  }

  function render(st) {
    document.getElementById('meta').textContent = 'node ' + st.nodeId.slice(0, 8) + ' · updated ' + clock(st.time);
    var tot = document.getElementById('totals');
    tot.replaceChildren();
    var failed = st.graphs.reduce(function (a, g) { return a + g.nodes.filter(function (n) { return n.status === 'failed'; }).length; }, 0);
    var items = [['messages', st.totals.messages], ['crashes', st.totals.crashes], ['restarts', st.totals.restarts], ['dead letters', st.totals.deadLetters], ['log lines', st.totals.logs], ['instances', st.graphs.reduce(function (a, g) { return a + g.nodes.length; }, 0)], ['failed', failed]];
    items.forEach(function (it) { var d = h('div', { 'data-total':it[0], 'class':it[0] === 'failed' && it[1] > 0 ? 'alert' : '' }); d.appendChild(h('b', {}, it[1])); d.appendChild(document.createTextNode(it[0])); tot.appendChild(d); });

    var graphs = document.getElementById('graphs');
    graphs.replaceChildren();
    if (st.graphs.length === 0) graphs.appendChild(h('p', { 'class':'empty' }, 'Nothing runs.'));
    st.graphs.forEach(function (g) {
      var t = h('h3', {}, g.name + ' ');
      t.appendChild(h('small', {}, g.id ? 'workflow ' + g.id.slice(0, 8) + (g.file ? ' · ' + g.file : '') : ''));
      graphs.appendChild(t);
      graphs.appendChild(drawGraph(g));
    });

    var tb = document.querySelector('#instances tbody');
    tb.replaceChildren();
    st.graphs.forEach(function (g) {
      g.nodes.forEach(function (n) {
        var tr = h('tr', { 'data-name':n.name, 'class':ALERT[n.status] ? 'alert' : '' });
        tr.appendChild(h('td', {}, n.name));
        tr.appendChild(h('td', {}, g.id ? g.name : '–'));
        tr.appendChild(h('td', {}, n.kind + (n.classType ? ' (' + n.classType + ')' : '')));
        var td = h('td'); td.appendChild(h('span', { 'class':'st', style:'background:' + (COLORS[n.status] || '#888') }, n.status)); tr.appendChild(td);
        tr.appendChild(h('td', { 'class':'num', 'data-field':'mailbox' }, n.mailbox));
        tr.appendChild(h('td', { 'class':'num', 'data-field':'messages' }, n.messages));
        tr.appendChild(h('td', { 'class':'num', 'data-field':'rate' }, fmtRate(n.rate)));
        tr.appendChild(h('td', { 'class':'num' }, n.restarts));
        tr.appendChild(h('td', { 'class':'num' }, n.crashes));
        tr.appendChild(h('td', { 'class':'num' }, n.timers));
        tr.appendChild(h('td', {}, n.waitingOn || ''));
        tr.appendChild(h('td', { 'class':'err' }, n.lastError || ''));
        tb.appendChild(tr);
      });
    });

    var fb = document.querySelector('#functions tbody');
    fb.replaceChildren();
    st.functions.forEach(function (f) {
      var tr = h('tr', { 'data-function':f.name });
      [f.name, f.casts, dur(f.castP50), dur(f.castP99), f.calls, dur(f.callP50), dur(f.callP99), f.deadLetters].forEach(function (v, i) { tr.appendChild(h('td', i ? { 'class':'num' } : {}, v)); });
      fb.appendChild(tr);
    });

    feed('logs', st.logs, function (l) {
      var li = h('li', { 'class':'lvl-' + l.levelName });
      li.appendChild(h('span', { 'class':'t' }, clock(l.time) + ' '));
      li.appendChild(h('span', {}, l.levelName.toUpperCase() + ' '));
      li.appendChild(h('span', { 'class':'who' }, l.name));
      li.appendChild(document.createTextNode(': ' + l.text));
      return li;
    }, 'No log lines yet.');
    feed('crashes', st.crashes, function (c) {
      var li = h('li', { 'class':'lvl-error' });
      li.appendChild(h('span', { 'class':'t' }, clock(c.time) + ' '));
      li.appendChild(h('span', { 'class':'who' }, c.name));
      li.appendChild(document.createTextNode(' in handle_' + c.handler + ' (' + c.trap + (c.trace ? ', trace ' + c.trace : '') + '): ' + c.message));
      return li;
    }, 'No crashes.');
    feed('activity', st.activity, function (a) {
      var li = h('li', { 'class':/escalation|dead-letter|call-|state-/.test(a.type) ? 'lvl-warn' : '' });
      li.appendChild(h('span', { 'class':'t' }, clock(a.time) + ' '));
      li.appendChild(h('span', { 'class':'who' }, a.name));
      li.appendChild(document.createTextNode(' ' + a.type + ': ' + a.text));
      return li;
    }, 'Nothing yet.');
  }

  function feed(id, items, make, empty) {
    var ul = document.getElementById(id);
    ul.replaceChildren();
    if (!items.length) { ul.appendChild(h('li', { 'class':'empty' }, empty)); return; }
    for (var i = items.length - 1; i >= 0; i--) ul.appendChild(make(items[i]));
  }

  var conn = document.getElementById('conn');
  function setConn(cls, text) { conn.className = 'conn ' + cls; conn.textContent = text; }
  function onState(text) {
    try { render(JSON.parse(text)); } catch (err) { console.warn('edgeless inspector: bad state', err); }
  }

  var polling = null;
  function poll() {
    if (polling) return;
    setConn('poll', 'polling');
    polling = setInterval(function () {
      fetch('state', { cache:'no-store' }).then(function (r) { if (!r.ok) throw new Error(r.status); return r.text(); })
        .then(function (t) { setConn('poll', 'polling'); onState(t); })
        .catch(function () { setConn('down', 'disconnected'); });
    }, 500);
  }

  if (typeof EventSource === 'function') {
    var es = new EventSource('events');
    var got = false;
    es.onmessage = function (ev) { got = true; setConn('live', 'live'); onState(ev.data); };
    es.onerror = function () {
      if (es.readyState === EventSource.CLOSED || !got) { es.close(); poll(); }
      else setConn('down', 'reconnecting');
    };
  } else {
    poll();
  }
})();
</script>
</body>
</html>
`
