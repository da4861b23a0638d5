// Metrics & health: one node's charts (from its 1 s samples), cluster
// charts (from the topology snapshots and polled statuses), and alerts.

import { $, el, fill, fmtBytes, fmtByteRate, fmtDuration, fmtNum, setText, shortId } from './util.js';
import { LineChart, Rates } from './charts.js';
import { LiveStream } from './live.js';
import { api, nodePath, perNode } from './api.js';

const HISTORY = 330;

export class MetricsView {
  constructor(app) {
    this.app = app;
    this.mainHistory = []; // samples of the connected node
    this.selected = ''; // '' = the connected node
    this.other = null; // LiveStream to another node
    this.rates = new Rates();
    const host = $('node-charts');
    const rate = (x) => `${fmtNum(x)}/s`;
    const perMin = (x) => `${fmtNum(x)}/min`;
    this.charts = {
      messages: new LineChart(host, { id: 'chart-messages', title: 'Messages', series: [{ label: 'in', color: '--series-1' }, { label: 'out', color: '--series-2' }], fmt: rate }),
      bytes: new LineChart(host, { id: 'chart-bytes', title: 'UDP traffic', series: [{ label: 'in', color: '--series-1' }, { label: 'out', color: '--series-2' }], fmt: fmtByteRate }),
      memory: new LineChart(host, { id: 'chart-memory', title: 'Memory (resident)', series: [{ label: 'RSS', color: '--series-3' }], fmt: fmtBytes }),
      cpu: new LineChart(host, { id: 'chart-cpu', title: 'CPU', series: [{ label: 'process', color: '--series-1' }], fmt: (x) => `${fmtNum(x)} %` }),
      neighbours: new LineChart(host, { id: 'chart-neighbours', title: 'Neighbours & local health', series: [{ label: 'neighbours', color: '--series-3' }, { label: 'local health', color: '--series-4' }], fmt: (x) => fmtNum(x), integer: true }),
      churn: new LineChart(host, { id: 'chart-churn', title: 'Neighbour churn', series: [{ label: 'links up', color: '--series-3' }, { label: 'down', color: '--series-4' }], fmt: perMin }),
      failures: new LineChart(host, { id: 'chart-failures', title: 'Failures detected', series: [{ label: 'neighbours declared dead', color: '--series-4' }], fmt: perMin }),
      rejected: new LineChart(host, { id: 'chart-rejected', title: 'Rejected datagrams', series: [{ label: 'rejected', color: '--series-4' }], fmt: rate, note: 'malformed, foreign cluster, oversized, unknown kind…' }),
    };
    const ch = $('cluster-charts');
    this.cluster = {
      nodes: new LineChart(ch, { id: 'chart-cl-nodes', title: 'Nodes and links', series: [{ label: 'nodes', color: '--series-1' }, { label: 'links', color: '--series-2' }], fmt: (x) => fmtNum(x, 0), integer: true }),
      churn: new LineChart(ch, { id: 'chart-cl-churn', title: 'Links formed / broken (whole graph)', series: [{ label: 'formed', color: '--series-3' }, { label: 'broken', color: '--series-4' }], fmt: perMin }),
      lost: new LineChart(ch, { id: 'chart-cl-lost', title: 'Nodes lost', series: [{ label: 'lost', color: '--series-4' }], fmt: perMin }),
      work: new LineChart(ch, { id: 'chart-cl-work', title: 'Work units', series: [{ label: 'running', color: '--series-1' }, { label: 'queued', color: '--series-2' }], fmt: (x) => fmtNum(x, 0), integer: true, note: 'summed over node statuses, each polled every few seconds' }),
    };
    $('metrics-node').addEventListener('change', (e) => this.select(e.target.value));
    $('alerts-table').addEventListener('click', (e) => {
      const b = e.target.closest('button[data-node]');
      if (b) app.openNode(b.dataset.node, b);
    });
    this.rejectedRate = 0;
    this.incidents = [];
    this.aggregates = null;
    this.streams = [];
    this.learning = [];
    this.lastPoll = 0;
    this.streamChart = new LineChart($('stream-charts'), { id: 'chart-stream', title: 'Lines per closed window', series: [{ label: 'lines', color: '--series-1' }], fmt: (x) => fmtNum(x, 0), integer: true, windowSec: 1800, note: 'the first running stream, by window end' });
    this.streamPlotted = 0; // end of the last window plotted
    this.learnChart = new LineChart($('learning-charts'), { id: 'chart-learning', title: 'Model accuracy', series: [{ label: 'here (own hold-out rows)', color: '--series-3' }, { label: 'network estimate', color: '--series-1' }], fmt: (x) => `${fmtNum(x * 100, 1)} %`, windowSec: 1800, note: 'the first task, polled every 2 s' });
  }

  /** Polls the connected node's incidents and aggregates (every 2 s, or at
   * once when an incident event arrives). */
  async pollNetwork(force = false) {
    const now = Date.now();
    if (this.polling || (!force && now - this.lastPoll < 2000)) return;
    this.polling = true;
    this.lastPoll = now;
    try {
      const [inc, agg] = await Promise.all([api('/v1/incidents', { timeout: 5000 }), api('/v1/aggregates', { timeout: 5000 })]);
      this.incidents = (inc && inc.incidents) || [];
      this.aggregates = agg;
    } catch (e) {
      // An older node has neither endpoint: the tables stay empty.
    }
    try {
      await this.pollWork();
    } finally {
      this.polling = false;
    }
    this.renderNetwork();
  }

  /** Streams (the last windows of up to three) and learning tasks. */
  async pollWork() {
    const [st, ln] = await Promise.allSettled([api('/v1/streams', { timeout: 5000 }), api('/v1/learn', { timeout: 5000 })]);
    if (st.status === 'fulfilled') {
      // Running streams first, then stopped ones; three at most.
      const all = ((st.value && st.value.streams) || []).filter((s) => s && s.stream && s.stream.id);
      const specs = [...all.filter((s) => !s.stream.stopped), ...all.filter((s) => s.stream.stopped)].slice(0, 3);
      this.streams = await Promise.all(
        specs.map((s) =>
          api(`/v1/streams/${s.stream.id}?last=10`, { timeout: 5000 })
            .then((v) => (v && v.stream ? v : { ...s, windows: [] }))
            .catch(() => ({ ...s, windows: [] })),
        ),
      );
    }
    if (ln.status === 'fulfilled') this.learning = ((ln.value && ln.value.tasks) || []).filter((t) => t && t.spec);
    const first = this.streams.find((s) => !s.stream.stopped) || this.streams[0];
    if (first && first.stream.id !== this.streamId) {
      this.streamId = first.stream.id;
      this.streamChart.clear();
      this.streamPlotted = 0;
    }
    // Windows in order of their end, each once (a late one is skipped).
    for (const w of (first && first.windows) || []) {
      if (!(w.end_ms > (this.streamPlotted || 0))) continue;
      this.streamPlotted = w.end_ms;
      this.streamChart.push(w.end_ms, [w.lines]);
    }
    const task = this.learning[0];
    if (task) this.learnChart.push(Date.now(), [task.local_accuracy ?? null, task.network_accuracy ?? null]);
    this.streamChart.draw();
    this.learnChart.draw();
  }

  renderNetwork() {
    const srows = [];
    for (const s of this.streams) {
      const ws = (s.windows || []).slice(-5).reverse();
      const name = `${s.stream.id.slice(0, 8)} · ${s.stream.dataset}${s.stream.stopped ? ' (stopped)' : ''}`;
      if (!ws.length) srows.push(el('tr', { 'data-stream': s.stream.id }, el('td', {}, name), el('td', {}, 'no window closed yet'), el('td', { class: 'num' }, '–'), el('td', { class: 'num' }, '–'), el('td', {}, '')));
      for (const w of ws) {
        const top = (w.top || []).slice(0, 3).map((t) => `${(t.key || []).join(' · ') || '(all)'} ×${fmtNum(t.count, 0)}`).join('; ');
        srows.push(
          el(
            'tr',
            { 'data-stream': s.stream.id, 'data-window': w.start_ms },
            el('td', {}, name),
            el('td', {}, `${new Date(w.start_ms).toLocaleTimeString()} + ${fmtDuration(s.stream.window_ms)}${w.complete === false ? ' (incomplete)' : ''}`),
            el('td', { class: 'num' }, fmtNum(w.lines, 0)),
            el('td', { class: 'num' }, fmtNum(w.keys, 0)),
            el('td', {}, top),
          ),
        );
      }
    }
    fill(document.querySelector('#streams-table tbody'), srows);
    $('streams-empty').hidden = srows.length > 0;
    setText($('streams-note'), this.streams.length ? `(${this.streams.length}, latest windows first)` : '');
    const pct = (x) => (x === undefined || x === null ? '–' : `${fmtNum(x * 100, 1)} %`);
    const lrows = this.learning.map((t) =>
      el(
        'tr',
        { 'data-task': t.spec.id },
        el('td', {}, t.spec.id),
        el('td', {}, t.spec.dataset),
        el('td', { class: 'num' }, `${fmtNum(t.cycles, 0)} / ${fmtNum(t.spec.cycles, 0)}`),
        el('td', { class: 'num' }, fmtNum(t.age, 0)),
        el('td', { class: 'num' }, pct(t.local_accuracy)),
        el('td', { class: 'num' }, pct(t.network_accuracy)),
      ),
    );
    fill(document.querySelector('#learning-table tbody'), lrows);
    $('learning-empty').hidden = lrows.length > 0;
    const rows = this.incidents.map((i) =>
      el(
        'tr',
        { 'data-incident': i.id, 'data-state': i.state, 'data-kind': i.kind },
        el('td', {}, i.summary),
        el('td', {}, el('span', { class: `state ${i.state === 'firing' ? 'suspect' : 'healthy'}` }, i.state)),
        el('td', {}, (i.members || []).map((m) => shortId(m)).join(' ')),
        el('td', { class: 'num' }, new Date(i.started_ms).toLocaleTimeString()),
        el('td', {}, el('code', {}, i.id)),
      ),
    );
    fill(document.querySelector('#incidents-table tbody'), rows);
    $('incidents-empty').hidden = rows.length > 0;
    const firing = this.incidents.filter((i) => i.state === 'firing').length;
    setText($('incidents-count'), firing ? `(${firing} firing)` : '');
    const a = this.aggregates;
    const arows = [];
    if (a && a.metrics) {
      for (const [k, m] of Object.entries(a.metrics)) {
        const f = (x) => (x === undefined || x === null ? '–' : fmtNum(x));
        arows.push(el('tr', { 'data-metric': k }, el('td', {}, k), el('td', { class: 'num' }, f(m.mean)), el('td', { class: 'num' }, f(m.error)), el('td', { class: 'num' }, f(m.p50)), el('td', { class: 'num' }, f(m.p90)), el('td', { class: 'num' }, f(m.min)), el('td', { class: 'num' }, f(m.max))));
      }
      const n = a.count ? `${fmtNum(a.count, 1)} nodes` : 'nodes: counting';
      setText($('aggregates-note'), `(${n}, round ${a.rounds}, by exchanges between neighbours)`);
    }
    fill(document.querySelector('#aggregates-table tbody'), arows);
    $('aggregates-empty').hidden = arows.length > 0;
  }

  /** A sample from the connected node's stream. */
  pushMain(s) {
    this.mainHistory.push(s);
    if (this.mainHistory.length > HISTORY) this.mainHistory.shift();
    if (this.selected === '') this.pushSample(s);
  }

  pushSample(s) {
    const c = s.counters || {};
    const r = this.rates.rate(s.t, c);
    const t = s.t;
    const ch = this.charts;
    ch.messages.push(t, [r.messages_in, r.messages_out]);
    ch.bytes.push(t, [r.bytes_in, r.bytes_out]);
    ch.memory.push(t, [c.rss_bytes ?? null]);
    ch.cpu.push(t, [r.cpu_seconds === null || r.cpu_seconds === undefined ? null : r.cpu_seconds * 100]);
    const st = s.status || {};
    ch.neighbours.push(t, [(st.neighbors || []).length, st.local_health ?? null]);
    ch.churn.push(t, [mul(r.links_up, 60), mul(r.links_down, 60)]);
    ch.failures.push(t, [mul(r.failures_detected, 60)]);
    ch.rejected.push(t, [r.rejected]);
    if (this.selected === '' || this.selected === st.node_id) this.rejectedRate = r.rejected || 0;
    if (this.app.view === 'metrics') this.drawAll();
  }

  /** A topology snapshot was applied: cluster series. */
  pushCluster() {
    const h = this.app.cluster.history;
    const last = h[h.length - 1];
    if (!last) return;
    const prev = h[h.length - 2];
    const dtMin = prev ? (last.t - prev.t) / 60000 : null;
    const c = this.cluster;
    c.nodes.push(last.t, [last.alive, last.links]);
    c.churn.push(last.t, dtMin ? [last.linksAdded / dtMin, last.linksRemoved / dtMin] : [null, null]);
    c.lost.push(last.t, [dtMin ? last.failed / dtMin : null]);
    c.work.push(last.t, [last.polled ? last.running : null, last.polled ? last.queued : null]);
    if (this.app.view === 'metrics') this.drawAll();
  }

  drawAll() {
    for (const c of Object.values(this.charts)) c.draw();
    for (const c of Object.values(this.cluster)) c.draw();
    this.streamChart.draw();
    this.learnChart.draw();
  }

  show() {
    this.refreshOptions();
    if (this.selected) this.openOther();
    this.drawAll();
    this.renderAlerts();
    this.pollNetwork(true);
  }

  hide() {
    // Only the connected node's stream runs while the charts are not shown.
    if (this.other) {
      this.other.stop();
      this.other = null;
    }
  }

  refreshOptions() {
    const sel = $('metrics-node');
    const obs = this.app.cluster.observer;
    const opts = [el('option', { value: '' }, `connected node (${shortId(obs)})`)];
    if (perNode.available !== false) {
      for (const n of this.app.cluster.alive()) {
        if (n.id !== obs && n.http) opts.push(el('option', { value: n.id, selected: n.id === this.selected }, `${shortId(n.id)} · ${n.addr}`));
      }
    }
    if (sel.options.length !== opts.length || sel.value !== this.selected) {
      fill(sel, opts);
      sel.value = this.selected;
    }
  }

  select(id) {
    this.selected = id;
    this.rates.reset();
    for (const c of Object.values(this.charts)) c.clear();
    this.hide();
    if (!id) {
      for (const s of this.mainHistory) this.pushSample(s);
    } else {
      this.openOther();
    }
    this.drawAll();
  }

  openOther() {
    const n = this.app.cluster.get(this.selected);
    if (!n || !n.http || this.other) return;
    this.other = new LiveStream(nodePath(n.http, '/v1/events'), { sample: (s) => this.pushSample(s) }, {});
    this.other.start();
  }

  renderAlerts() {
    const c = this.app.cluster;
    const now = Date.now();
    const rows = [];
    const rank = { suspect: 0, degraded: 1 };
    const bad = c.alive().filter((n) => n.state !== 'healthy').sort((a, b) => rank[a.state] - rank[b.state] || a.since - b.since);
    for (const n of bad) {
      rows.push(
        el(
          'tr',
          { 'data-node-id': n.id, 'data-state': n.state },
          el('td', {}, el('button', { type: 'button', class: 'linkish', 'data-node': n.id }, shortId(n.id)), ` ${n.addr || ''}`),
          el('td', {}, el('span', { class: `state ${n.state}` }, n.state)),
          el('td', {}, n.reasons.join('; ')),
          el('td', { class: 'num' }, fmtDuration(now - n.since)),
        ),
      );
    }
    if (this.rejectedRate > 1 && c.observer) {
      const o = c.get(c.observer);
      rows.push(
        el(
          'tr',
          { 'data-node-id': c.observer, 'data-state': 'degraded' },
          el('td', {}, el('button', { type: 'button', class: 'linkish', 'data-node': c.observer }, shortId(c.observer)), ` ${o ? o.addr : ''}`),
          el('td', {}, el('span', { class: 'state degraded' }, 'notice')),
          el('td', {}, `rejecting ${fmtNum(this.rejectedRate)} datagrams/s (see /metrics ryx_datagrams_rejected_total)`),
          el('td', { class: 'num' }, '–'),
        ),
      );
    }
    fill(document.querySelector('#alerts-table tbody'), rows);
    $('alerts-empty').hidden = rows.length > 0;
    setText($('alerts-count'), rows.length ? `(${rows.length})` : '');
    const badge = $('alerts-badge');
    badge.hidden = bad.length === 0;
    setText(badge, bad.length);
  }
}

function mul(x, k) {
  return x === null || x === undefined ? null : x * k;
}
