// Ryx control: wiring. One event stream from the connected node drives
// the page (`sample` every second, `topology` every two, `node` events as
// they happen); other nodes are asked only for what that stream cannot
// tell, at a bounded rate, and never while the page is hidden.

import { $, setText, shortId, announce, fmtByteRate, throttle } from './util.js';
import { nodeApi, perNode } from './api.js';
import { LiveStream } from './live.js';
import { Cluster } from './model.js';
import { Layout } from './graph.js';
import { TopologyView } from './topology.js';
import { EnergyView } from './energy.js';
import { JobsView } from './jobs.js';
import { InjectView } from './inject.js';
import { MetricsView } from './metrics.js';
import { NodeDetail } from './detail.js';

const VIEWS = ['topology', 'energy', 'jobs', 'inject', 'metrics'];

const cluster = new Cluster();
const layout = new Layout(cluster);

const app = {
  cluster,
  layout,
  view: null,
  events: [], // recent events of the connected node
  perf: { listMs: 0, topologyApplyMs: 0, lastTopologyAt: 0 },
  control: null,
  openNode: (id, trigger) => detail.open(id, trigger),
  setSelected(id) {
    topology.graph.selected = id;
    energy.graph.selected = id;
    layout.wake();
  },
};

const jobs = new JobsView(app);
app.jobs = jobs;
const topology = new TopologyView(app);
const energy = new EnergyView(app);
app.energy = energy;
const inject = new InjectView(app);
const metrics = new MetricsView(app);
const detail = new NodeDetail(app);
const views = { topology, energy, jobs, inject, metrics };

// ---------------------------------------------------------------- routing

function route() {
  const [name, arg] = location.hash.replace(/^#/, '').split('/');
  const view = VIEWS.includes(name) ? name : 'topology';
  if (app.view !== view) {
    if (app.view && views[app.view].hide) views[app.view].hide();
    app.view = view;
    for (const v of VIEWS) $(`view-${v}`).hidden = v !== view;
    for (const a of document.querySelectorAll('.tabs a')) {
      if (a.dataset.view === view) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    }
    document.title = `${document.querySelector(`.tabs a[data-view="${view}"]`).firstChild.textContent.trim()} · Ryx control`;
  }
  views[view].show(arg);
  layout.wake();
}
window.addEventListener('hashchange', route);

// ---------------------------------------------------------------- live data

const updateList = throttle(() => {
  topology.update();
  if (app.view === 'metrics') metrics.renderAlerts();
}, 500);

function onSample(s) {
  cluster.applyStatus(s.status);
  cluster.refreshHealth();
  metrics.pushMain(s);
  jobs.fromSample(s.jobs);
  detail.onSample(s);
  setText($('fact-cluster'), s.status.cluster_id);
  const via = app.control ? ' via ryx-control' : '';
  setText($('fact-node'), `${shortId(s.status.node_id)} · ${s.status.addr}${via}`);
  if (app.view === 'energy') energy.renderWork();
  if (app.view === 'metrics') metrics.pollNetwork();
  updateList();
  const obs = cluster.get(s.status.node_id);
  if (obs && obs.hops === null) obs.hops = 0;
}

function onTopology(topo) {
  const t0 = performance.now();
  const r = cluster.applyTopology(topo);
  if (!r) return;
  if (r.switched) announce(`Now connected to node ${shortId(topo.observer)}`);
  if (r.changed) layout.reheat(r.added.length ? 0.7 : 0.25);
  for (const n of r.gone) announce(`Node ${shortId(n.id)} is gone: ${n.goneReason}`);
  topology.update();
  metrics.pushCluster();
  if (app.view === 'metrics') {
    metrics.refreshOptions();
    metrics.renderAlerts();
  }
  setText($('fact-nodes'), cluster.alive().length);
  setText($('fact-links'), [...cluster.links.values()].filter((l) => !l.fadeAt).length);
  app.perf.topologyApplyMs = performance.now() - t0;
  app.perf.lastTopologyAt = Date.now();
}

function onNodeEvent(ev) {
  if (!(ev.event === 'item_delivered' && ev.id && ev.id.space === 'topology')) {
    app.events.unshift({ at: Date.now(), ev });
    if (app.events.length > 200) app.events.length = 200;
  }
  const gone = cluster.applyEvent(ev);
  if (gone) {
    announce(`Node ${shortId(gone.id)} is gone: ${gone.goneReason}`);
    topology.update();
    setText($('fact-nodes'), cluster.alive().length);
    layout.wake();
  }
  if (ev.event === 'item_delivered') energy.onDelivered(ev);
  if (ev.event === 'suspect') updateList();
  if (ev.event === 'incident' && app.view === 'metrics') metrics.pollNetwork(true);
  detail.onEvent(ev);
}

const STATE_TEXT = { idle: 'Idle', connecting: 'Connecting…', reconnecting: 'Reconnecting…', retrying: 'Connection lost', live: 'Live' };
const stream = new LiveStream(
  '/v1/events',
  { sample: onSample, topology: onTopology, node: onNodeEvent, lagged: () => {} },
  {
    onState: (st, info) => {
      const pill = $('conn-state');
      pill.dataset.state = st;
      setText($('conn-text'), st === 'retrying' ? `${STATE_TEXT[st]}: retrying in ${Math.round(info.inMs / 100) / 10} s` : STATE_TEXT[st]);
      if (st === 'live' && stream.reconnects) announce('Live data restored');
    },
  },
);
app.stream = stream;

// ------------------------------------------------------- other nodes, bounded

/**
 * Statuses of the other nodes (health, load, suspicions): round-robin
 * through `/node/{addr}/v1/status`, at most 8 requests per second in all
 * and each node at most every 4 s; paused while the page is hidden.
 */
class StatusPoller {
  constructor() {
    this.inflight = 0;
    this.maxRate = 8;
    setInterval(() => this.tick(), 250);
  }
  interval(count) {
    return Math.max(4000, (count / this.maxRate) * 1000);
  }
  tick() {
    if (document.hidden || perNode.available === false || stream.state !== 'live') return;
    const nodes = cluster.alive().filter((n) => n.http && n.id !== cluster.observer);
    const iv = this.interval(nodes.length);
    const now = Date.now();
    const due = nodes.filter((n) => now - (n.statusAt || 0) >= iv).sort((a, b) => (a.statusAt || 0) - (b.statusAt || 0));
    for (const n of due.slice(0, Math.max(0, 2 - this.inflight))) this.poll(n);
  }
  async poll(n) {
    this.inflight++;
    n.statusAt = Date.now();
    try {
      const st = await nodeApi(n.http, '/v1/status', { timeout: 4000 });
      cluster.applyStatus(st);
    } catch (e) {
      if (perNode.available !== false) cluster.pollFailed(n.id, e.code === 'network' ? 'no answer' : e.message);
    } finally {
      this.inflight--;
      updateList();
    }
  }
}
new StatusPoller();

/**
 * Beyond the connected node's reach (neighbour lists travel ~4 hops): every
 * 8 s, while some listed neighbour is unknown, fetch the topology of up to
 * two frontier nodes and merge it.
 */
async function lookFurther() {
  if (document.hidden || perNode.available === false || stream.state !== 'live') return;
  const frontier = cluster.frontier();
  if (!frontier.length) return;
  const pick = frontier.slice(0, 2);
  for (const n of pick) {
    try {
      const topo = await nodeApi(n.http, '/v1/topology', { timeout: 5000 });
      const r = cluster.applySecondary(topo);
      if (r && r.changed) {
        layout.reheat(r.added.length ? 0.6 : 0.2);
        topology.update();
      }
    } catch {
      /* next time */
    }
  }
}
setInterval(lookFurther, 8000);

// ---------------------------------------------------------------- standalone server

async function controlStatus() {
  try {
    const r = await fetch('/control/status', { cache: 'no-store' });
    if (r.ok) app.control = await r.json();
  } catch {
    /* keep the last */
  }
}

// ---------------------------------------------------------------- chrome

const THEME_KEY = 'ryx-control-theme';
function setTheme(t) {
  document.documentElement.dataset.theme = t;
  const b = $('theme-toggle');
  b.setAttribute('aria-pressed', String(t === 'light'));
  setText(b, t === 'light' ? 'Dark theme' : 'Light theme');
  topology.graph.refreshColors();
  energy.graph.refreshColors();
  metrics.drawAll();
  for (const c of [...Object.values(metrics.charts), ...Object.values(metrics.cluster)]) {
    c.dirty = true;
    c.draw();
  }
}
$('theme-toggle').addEventListener('click', () => {
  const t = document.documentElement.dataset.theme === 'light' ? 'dark' : 'light';
  try {
    localStorage.setItem(THEME_KEY, t);
  } catch {
    /* private mode */
  }
  setTheme(t);
});
let savedTheme = null;
try {
  savedTheme = localStorage.getItem(THEME_KEY);
} catch {
  /* private mode */
}
const urlTheme = new URLSearchParams(location.search).get('theme');
setTheme(urlTheme || savedTheme || (matchMedia('(prefers-color-scheme: light)').matches ? 'light' : 'dark'));

// Footer: what this page costs the node it is connected to.
let lastBytes = 0;
let lastAt = performance.now();
setInterval(() => {
  const now = performance.now();
  const rate = ((stream.bytes - lastBytes) * 1000) / (now - lastAt);
  lastBytes = stream.bytes;
  lastAt = now;
  setText($('foot-stream'), `event stream: ${fmtByteRate(rate)}`);
  const p = layout.perf;
  setText($('foot-perf'), p.fps ? `graph: ${p.fps} fps, ${p.frameMs.toFixed(1)} ms/frame, ${p.nodes} nodes` : `graph: idle (${p.nodes} nodes)`);
}, 2000);

document.addEventListener('visibilitychange', () => {
  if (!document.hidden) layout.wake();
});

// For tests and measurements (read-only use).
window.__ryx = { app, cluster, layout, stream, metrics, bench: (ms) => layout.benchmark(ms), perNode };

route();
stream.start();
fetch('/v1/status', { cache: 'no-store' })
  .then(async (r) => {
    // Served by the standalone ryx-control (it marks what it relays)?
    if (r.headers.get('x-ryx-control')) {
      controlStatus();
      setInterval(controlStatus, 5000);
    }
    if (!r.ok) return;
    const s = await r.json();
    // Paint the header before the first sample.
    setText($('fact-cluster'), s.cluster_id);
    setText($('fact-node'), `${shortId(s.node_id)} · ${s.addr}`);
  })
  .catch(() => {});
