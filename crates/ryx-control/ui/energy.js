// Energy flow: where an info item reached, and with how much energy.
//
// After an injection the page asks every known node for the item
// (`/node/{addr}/v1/info/{key}`: energy held and hops travelled), a few
// requests at a time, then colours the graph by energy and replays the
// arrival in hop order. Arrivals at the connected node come live from its
// event stream (`item_delivered`).

import { $, el, fill, fmtNum, shortId, setText, announce } from './util.js';
import { api, nodeApi, perNode } from './api.js';
import { GraphView, energyColor } from './graph.js';
import { makeTooltip, loadText } from './topology.js';

const CONCURRENCY = 6;
const DECAY = 0.9;
const COST = 1;

export class EnergyView {
  constructor(app) {
    this.app = app;
    this.trace = null;
    this.feed = [];
    this.graph = new GraphView($('energy-canvas'), app.layout, {
      mode: 'energy',
      visible: () => app.view === 'energy',
      onSelect: (n) => app.openNode(n.id),
      tooltip: makeTooltip($('energy-tip'), app, (n) => {
        const e = this.trace && this.trace.byNode.get(n.id);
        if (!this.trace) return null;
        if (!e) return this.trace.checked.has(n.id) ? `does not hold ${this.trace.key}` : 'not asked yet';
        return `holds ${this.trace.key} with energy ${fmtNum(e.energy)} after ${e.hops} hops`;
      }),
      overlay: () => ({ energy: this.trace, homes: this.app.jobs.homes(), showLoad: true }),
    });
    $('energy-form').addEventListener('submit', (e) => {
      e.preventDefault();
      this.inject();
    });
    $('energy-retrace').addEventListener('click', () => {
      const key = this.trace ? this.trace.key : $('energy-form').elements.key.value;
      this.startTrace(key, {});
    });
  }

  show() {
    this.graph.resize();
    this.renderWork();
    this.renderSummary();
  }

  async inject() {
    const f = $('energy-form').elements;
    const energy = Number(f.energy.value) || undefined;
    let value;
    try {
      value = JSON.parse(f.value.value);
    } catch {
      value = f.value.value;
    }
    try {
      const r = await api('/v1/info', { method: 'POST', json: { key: f.key.value, value, energy } });
      this.startTrace(r.key, { version: r.version, origin: r.origin, energy });
    } catch (e) {
      fill($('energy-summary'), el('p', { class: 'error-text' }, `Not injected: ${e.message}`));
    }
  }

  /** Asks every node for `key`; repeats once for nodes that lacked it (diffusion takes a moment). */
  async startTrace(key, { version, origin, energy }) {
    const token = {};
    this.token = token;
    this.trace = { key, version, origin, injected: energy, byNode: new Map(), checked: new Set(), max: energy || 0, pulseStart: 0, startedAt: Date.now(), asked: 0, rounds: 0 };
    this.renderSummary('Tracing…');
    this.app.layout.wake();
    await sleep(700);
    for (let round = 0; round < 3 && this.token === token; round++) {
      const targets = this.app.cluster.alive().filter((n) => n.http && !this.trace.byNode.has(n.id));
      if (!targets.length) break;
      await this.ask(targets, token);
      this.trace.rounds = round + 1;
      if (this.token !== token) return;
      this.finishRound();
      if (round < 2) await sleep(2000);
    }
  }

  async ask(targets, token) {
    const t = this.trace;
    const key = encodeURIComponent(t.key);
    const obs = this.app.cluster.observer;
    // The connected node first, directly; the others through /node/.
    const queue = [...targets].sort((a, b) => (b.id === obs) - (a.id === obs));
    const worker = async () => {
      while (queue.length && this.token === token) {
        const n = queue.shift();
        if (n.id !== obs && perNode.available === false) continue;
        try {
          const it = n.id === obs ? await api(`/v1/info/${key}`) : await nodeApi(n.http, `/v1/info/${key}`, { timeout: 5000 });
          t.byNode.set(n.id, { energy: it.energy, hops: it.hops, version: it.version, origin: it.origin });
        } catch (e) {
          if (e.status !== 404) t.errors = (t.errors || 0) + 1;
        }
        t.checked.add(n.id);
        t.asked++;
        if (t.asked % 10 === 0) this.renderSummary('Tracing…');
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  }

  finishRound() {
    const t = this.trace;
    // Keep the newest version only; older ones are shown as not held.
    let best = null;
    for (const e of t.byNode.values()) if (!best || e.version > best.version || (e.version === best.version && e.origin > best.origin)) best = e;
    if (best && t.version === undefined) {
      t.version = best.version;
      t.origin = best.origin;
    }
    let max = 0;
    for (const [id, e] of t.byNode) {
      if (e.version !== t.version || e.origin !== t.origin) t.byNode.delete(id);
      else max = Math.max(max, e.energy);
    }
    t.max = Math.max(max, t.injected || 0) || 1;
    t.pulseStart = Date.now();
    setText($('energy-max'), fmtNum(t.max));
    this.app.layout.wake();
    this.renderSummary();
    announce(`${t.key}: held by ${t.byNode.size} of ${this.app.cluster.alive().length} nodes`);
  }

  /** An `item_delivered` event from the connected node. */
  onDelivered(ev) {
    if (!ev.id || ev.id.space !== 'info') return;
    this.feed.unshift({ at: Date.now(), key: ev.id.key, version: ev.id.version, energy: ev.energy, hops: ev.hops, from: ev.from });
    this.feed.length = Math.min(this.feed.length, 30);
    const t = this.trace;
    const obs = this.app.cluster.observer;
    if (t && ev.id.key === t.key && (t.version === undefined || ev.id.version >= t.version) && obs) {
      t.byNode.set(obs, { energy: ev.energy, hops: ev.hops, version: ev.id.version, origin: ev.id.origin });
      t.checked.add(obs);
      this.app.layout.wake();
    }
    if (this.app.view === 'energy') this.renderFeed();
  }

  renderFeed() {
    fill(
      $('energy-feed'),
      this.feed.length
        ? this.feed.map((f) => el('li', {}, `${new Date(f.at).toLocaleTimeString('en-GB')} `, el('b', {}, f.key), ` v${f.version} · energy ${fmtNum(f.energy)} · ${f.hops} hops · from ${shortId(f.from)}`))
        : el('li', {}, 'Nothing yet. Items injected anywhere arrive here as they diffuse.'),
    );
  }

  renderSummary(progress) {
    this.renderFeed();
    const t = this.trace;
    const host = $('energy-summary');
    const table = $('energy-hops');
    if (!t) {
      fill(host, el('p', { class: 'help' }, 'Energy decays at every hop (e′ = 0.9·e − 1 with default settings); an item stops where it runs out. Higher energy reaches further.'));
      table.hidden = true;
      setText($('energy-caption'), 'Inject an item to see where it reaches and with how much energy.');
      return;
    }
    const alive = this.app.cluster.alive();
    const held = [...t.byNode.values()];
    const maxHops = held.reduce((m, e) => Math.max(m, e.hops), 0);
    const origin = held.find((e) => e.hops === 0);
    const e0 = origin ? origin.energy : t.injected;
    setText($('energy-caption'), `Item “${t.key}” (v${t.version ?? '?'}, origin ${shortId(t.origin)}): node colour = energy it holds the item with.`);
    fill(
      host,
      el('p', {}, el('span', { class: 'big', id: 'energy-reached', 'data-held': held.length }, `${held.length}`), ` of ${alive.length} nodes hold “${t.key}”`, maxHops ? `, up to ${maxHops} hop${maxHops === 1 ? '' : 's'} from its origin` : ''),
      progress ? el('p', { class: 'help' }, `${progress} (${t.asked} asked)`) : null,
      perNode.available === false ? el('p', { class: 'help' }, 'This server cannot reach other nodes (/node/ route missing): only the connected node is shown.') : null,
      t.errors ? el('p', { class: 'help' }, `${t.errors} node(s) did not answer.`) : null,
    );
    const byHop = new Map();
    for (const e of held) {
      const a = byHop.get(e.hops) || [];
      a.push(e.energy);
      byHop.set(e.hops, a);
    }
    const K = COST / (1 - DECAY);
    const rows = [...byHop.entries()].sort((a, b) => a[0] - b[0]).map(([h, es]) => {
      const mean = es.reduce((s, x) => s + x, 0) / es.length;
      const model = e0 !== undefined ? DECAY ** h * (e0 + K) - K : null;
      return el(
        'tr',
        {},
        el('td', {}, el('span', { class: 'k-dot', style: `background:${energyColor(mean / (t.max || 1))}`, 'aria-hidden': 'true' }), ` ${h}`),
        el('td', { class: 'num' }, es.length),
        el('td', { class: 'num' }, fmtNum(mean)),
        el('td', { class: 'num' }, model === null ? '–' : fmtNum(Math.max(model, 0))),
      );
    });
    fill(table.tBodies[0], rows);
    table.hidden = rows.length === 0;
  }

  renderWork() {
    const app = this.app;
    const jobs = [...app.jobs.jobs.values()].filter((j) => j.state === 'running');
    const busy = app.cluster.alive().filter((n) => {
      const ld = app.cluster.load(n);
      return ld && (ld.running > 0 || ld.queued > 0);
    });
    fill(
      $('energy-work'),
      jobs.length
        ? el('ul', {}, jobs.map((j) => el('li', {}, el('a', { href: `#jobs/${j.job_id}` }, shortId(j.job_id)), ` ${j.kind}: ${j.progress.units_done}/${j.progress.units_total} units, home ${shortId(j.home)}`)))
        : el('p', { class: 'help' }, 'No job running.'),
      busy.length
        ? el('p', {}, 'Working now: ', busy.slice(0, 12).map((n, i) => [i ? ', ' : '', el('span', { class: 'mono' }, shortId(n.id)), ` (${loadText(app.cluster, n)})`]), busy.length > 12 ? ` and ${busy.length - 12} more` : '')
        : jobs.length
          ? el('p', { class: 'help' }, 'No node reported a unit running at its last status.')
          : null,
      el('p', { class: 'note' }, 'Rings on the graph show busy work slots (from each node’s status); squares mark job homes.'),
    );
  }
}

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}
