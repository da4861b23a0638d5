// The cluster as the page knows it: nodes, links, health and load, all
// derived from what nodes report (topology snapshots, statuses, events).
//
// Which nodes are alive. A node's own neighbour list may linger in the
// topology for a while after it dies, but its neighbours drop it from
// their lists at once (their changed lists reach here within seconds, at
// most 37.5 s in a large network). So a node counts as alive when it is
// reachable from the connected node by following the neighbour lists
// *as listed by their owners*: nothing alive lists a dead node, whatever
// its stale list says. A node unreachable in two snapshots in a row (or
// reported failed/left by the connected node, or absent) is gone; it fades
// out of the graph and leaves the list at once.
//
// Beyond the connected node's reach (neighbour lists travel ~4 hops), the
// page merges topologies fetched from nodes at the frontier (secondary
// observers), each list taken from whichever snapshot has it freshest.

export const MIN_NEIGHBORS = 4;
export const FADE_MS = 4000;
const LINK_FADE_MS = 1500;
const SECONDARY_TTL_MS = 30000;
const SUSPICION_TTL_MS = 10000;
const POLL_ERROR_TTL_MS = 15000;

export class Cluster extends EventTarget {
  constructor() {
    super();
    /** @type {Map<string, any>} id → node (gone nodes stay while fading) */
    this.nodes = new Map();
    /** @type {Map<string, any>} "a|b" → link */
    this.links = new Map();
    this.observer = null;
    this.observerStatus = null;
    this.primary = null;
    this.secondary = new Map();
    this.recentlyGone = new Map();
    this.history = [];
    this.unknownTargets = new Map();
    this.version = 0;
    this.lastTopologyAt = 0;
  }

  /** Nodes not gone, in id order. */
  alive() {
    const out = [];
    for (const n of this.nodes.values()) if (!n.goneAt) out.push(n);
    out.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    return out;
  }

  get(id) {
    return this.nodes.get(id);
  }

  /** The connected node's topology (every 2 s on the event stream). */
  applyTopology(topo, now = Date.now()) {
    if (!topo || !Array.isArray(topo.nodes)) return null;
    const switched = this.observer && topo.observer !== this.observer;
    this.observer = topo.observer;
    this.primary = { topo, at: now };
    this.lastTopologyAt = now;
    const r = this.recompute(now, true);
    r.switched = switched;
    return r;
  }

  /** A topology fetched from another node (to see beyond the connected node's reach). */
  applySecondary(topo, now = Date.now()) {
    if (!topo || !Array.isArray(topo.nodes) || topo.observer === this.observer) return null;
    this.secondary.set(topo.observer, { topo, at: now });
    return this.recompute(now, false);
  }

  recompute(now, primaryTick) {
    for (const [k, s] of this.secondary) {
      if (now - s.at > SECONDARY_TTL_MS || k === this.observer) this.secondary.delete(k);
    }
    for (const [k, t] of this.recentlyGone) if (now - t > 60000) this.recentlyGone.delete(k);

    // Freshest neighbour list of every node, over all snapshots.
    const entries = new Map();
    const add = (topo, at, isPrimary) => {
      const lists = new Map();
      for (const l of topo.links || []) {
        let a = lists.get(l.source);
        if (!a) lists.set(l.source, (a = []));
        a.push(l);
      }
      for (const n of topo.nodes) {
        if (!isPrimary) {
          const g = this.recentlyGone.get(n.node_id);
          if (g && at < g + 3000) continue;
        }
        const age = (n.age_ms || 0) + (now - at);
        const cur = entries.get(n.node_id);
        if (cur && cur.age <= age) continue;
        entries.set(n.node_id, {
          n,
          age,
          hops: isPrimary ? n.hops : null,
          list: lists.get(n.node_id) || [],
        });
      }
    };
    if (this.primary) add(this.primary.topo, this.primary.at, true);
    for (const s of this.secondary.values()) add(s.topo, s.at, false);

    // Alive: reachable from the connected node along owners' lists.
    const reach = new Set();
    const unknown = new Map();
    if (entries.has(this.observer)) {
      reach.add(this.observer);
      const stack = [this.observer];
      while (stack.length) {
        const id = stack.pop();
        for (const l of entries.get(id).list) {
          if (reach.has(l.target)) continue;
          if (entries.has(l.target)) {
            reach.add(l.target);
            stack.push(l.target);
          } else {
            unknown.set(l.target, id);
          }
        }
      }
    }
    this.unknownTargets = unknown;

    const added = [];
    const gone = [];
    for (const [id, e] of entries) {
      let n = this.nodes.get(id);
      const reached = reach.has(id);
      if (!n) {
        if (!reached) continue;
        n = this.newNode(id, e);
        added.push(n);
      }
      n.addr = e.n.addr;
      n.http = e.n.http || n.http;
      n.hops = e.hops;
      n.ageMs = e.age;
      n.list = e.list;
      n.outDeg = e.list.length;
      // Network coordinate (ms): a point, a height and its relative error.
      n.coord = e.n.coord || null;
      for (const k of ['local_health', 'running', 'queued', 'slots']) {
        if (e.n[k] !== undefined) n.reported[k] = e.n[k];
      }
      if (reached) {
        n.unreached = 0;
        // A node just reported dead may still be listed for a moment by
        // neighbours that have not noticed yet: do not bring it back at once.
        if (n.goneAt && now - n.goneAt > 3000) {
          n.goneAt = 0;
          n.goneReason = null;
          this.recentlyGone.delete(id);
          added.push(n);
        }
      } else if (primaryTick && !n.goneAt) {
        n.unreached++;
        if (n.unreached >= 2) gone.push(this.markGone(n, 'no live node lists it', now));
      }
    }
    if (primaryTick) {
      for (const n of this.nodes.values()) {
        if (!n.goneAt && !entries.has(n.id)) gone.push(this.markGone(n, 'dropped from the topology', now));
      }
    }

    // Links between live nodes, undirected; long if either end says so.
    const want = new Map();
    const live = (id) => {
      const m = this.nodes.get(id);
      return reach.has(id) && m && !m.goneAt;
    };
    for (const id of reach) {
      if (!live(id)) continue;
      for (const l of entries.get(id).list) {
        if (!live(l.target) || l.target === id) continue;
        const [a, b] = id < l.target ? [id, l.target] : [l.target, id];
        const key = `${a}|${b}`;
        let w = want.get(key);
        if (!w) want.set(key, (w = { a, b, long: false, rtt: null, sides: 0 }));
        w.long = w.long || !!l.long;
        w.sides++;
        if (typeof l.rtt_ms === 'number') w.rtt = w.rtt === null ? l.rtt_ms : Math.min(w.rtt, l.rtt_ms);
      }
    }
    // Graph distance (in links) from the connected node.
    const adj = new Map();
    for (const w of want.values()) {
      if (!adj.has(w.a)) adj.set(w.a, []);
      if (!adj.has(w.b)) adj.set(w.b, []);
      adj.get(w.a).push(w.b);
      adj.get(w.b).push(w.a);
    }
    for (const n of this.nodes.values()) n.dist = null;
    const start = this.nodes.get(this.observer);
    if (start) {
      start.dist = 0;
      const queue = [this.observer];
      for (let i = 0; i < queue.length; i++) {
        const d = this.nodes.get(queue[i]).dist;
        for (const id of adj.get(queue[i]) || []) {
          const m = this.nodes.get(id);
          if (m && m.dist === null) {
            m.dist = d + 1;
            queue.push(id);
          }
        }
      }
    }
    let linksAdded = 0;
    let linksRemoved = 0;
    for (const [k, w] of want) {
      const l = this.links.get(k);
      if (!l) {
        this.links.set(k, { key: k, a: this.nodes.get(w.a), b: this.nodes.get(w.b), long: w.long, rtt: w.rtt, sides: w.sides, fadeAt: 0, bornAt: now });
        linksAdded++;
      } else {
        l.long = w.long;
        l.rtt = w.rtt;
        l.sides = w.sides;
        l.a = this.nodes.get(w.a);
        l.b = this.nodes.get(w.b);
        if (l.fadeAt) l.fadeAt = 0;
      }
    }
    for (const [k, l] of this.links) {
      if (!want.has(k) && !l.fadeAt) {
        l.fadeAt = now;
        linksRemoved++;
      }
    }

    this.refreshHealth(now);
    this.version++;
    if (primaryTick) {
      let running = 0;
      let queued = 0;
      let polled = 0;
      for (const n of this.nodes.values()) {
        if (n.goneAt || !n.status) continue;
        polled++;
        running += n.status.work ? n.status.work.running : 0;
        queued += n.status.work ? n.status.work.queued : 0;
      }
      this.history.push({ t: now, alive: this.alive().length, links: want.size, linksAdded, linksRemoved, failed: gone.length, running, queued, polled });
      if (this.history.length > 600) this.history.shift();
    }
    const r = { added, gone, linksAdded, linksRemoved, changed: added.length + gone.length + linksAdded + linksRemoved > 0 };
    this.dispatchEvent(new CustomEvent('change', { detail: r }));
    return r;
  }

  newNode(id, e) {
    // Start next to a placed neighbour, so new nodes grow out of the graph.
    let x = (Math.random() - 0.5) * 200;
    let y = (Math.random() - 0.5) * 200;
    for (const l of e.list) {
      const m = this.nodes.get(l.target);
      if (m && !m.goneAt) {
        x = m.x + (Math.random() - 0.5) * 30;
        y = m.y + (Math.random() - 0.5) * 30;
        break;
      }
    }
    const n = {
      id,
      addr: e.n.addr,
      http: e.n.http,
      hops: e.hops,
      ageMs: e.age,
      list: e.list,
      outDeg: e.list.length,
      x,
      y,
      vx: 0,
      vy: 0,
      bornAt: Date.now(),
      goneAt: 0,
      goneReason: null,
      unreached: 0,
      status: null,
      statusAt: 0,
      pollError: null,
      pollErrorAt: 0,
      suspectedBy: new Map(),
      reported: {},
      state: 'healthy',
      reasons: [],
      since: 0,
    };
    this.nodes.set(id, n);
    return n;
  }

  markGone(n, reason, now = Date.now()) {
    n.goneAt = now;
    n.goneReason = reason;
    this.recentlyGone.set(n.id, now);
    for (const l of this.links.values()) {
      if ((l.a === n || l.b === n) && !l.fadeAt) l.fadeAt = now;
    }
    return n;
  }

  /** Forgets faded-out nodes and links. Returns whether anything is still fading. */
  prune(now = Date.now()) {
    let fading = false;
    for (const [k, l] of this.links) {
      if (l.fadeAt) {
        if (now - l.fadeAt > LINK_FADE_MS) this.links.delete(k);
        else fading = true;
      }
    }
    for (const [id, n] of this.nodes) {
      if (n.goneAt) {
        if (now - n.goneAt > FADE_MS) this.nodes.delete(id);
        else fading = true;
      }
    }
    return fading;
  }

  /** A `node` event from the connected node's stream. Returns a node it declared gone, if any. */
  applyEvent(ev, now = Date.now()) {
    if (!ev || !ev.event) return null;
    if (ev.event === 'neighbor_down' && (ev.reason === 'failed' || ev.reason === 'left')) {
      const n = this.nodes.get(ev.id);
      if (n && !n.goneAt) {
        this.markGone(n, ev.reason === 'failed' ? `failed (detected by ${this.observer.slice(0, 8)})` : 'left the network', now);
        this.refreshHealth(now);
        this.version++;
        this.dispatchEvent(new CustomEvent('change', { detail: { added: [], gone: [n], changed: true } }));
        return n;
      }
    } else if (ev.event === 'suspect') {
      const n = this.nodes.get(ev.id);
      if (n && this.observer) {
        n.suspectedBy.set(this.observer, now);
        this.refreshHealth(now);
      }
    }
    return null;
  }

  /** A node's `/v1/status` (the connected node's arrives with every sample). */
  applyStatus(status, now = Date.now()) {
    if (!status || !status.node_id) return;
    if (status.node_id === this.observer) this.observerStatus = status;
    const n = this.nodes.get(status.node_id);
    if (n) {
      n.status = status;
      n.statusAt = now;
      n.pollError = null;
    }
    for (const nb of status.neighbors || []) {
      const m = this.nodes.get(nb.node_id);
      if (!m) continue;
      if (nb.suspect) m.suspectedBy.set(status.node_id, now);
      else m.suspectedBy.delete(status.node_id);
    }
  }

  pollFailed(id, message, now = Date.now()) {
    const n = this.nodes.get(id);
    if (!n) return;
    n.pollError = message;
    n.pollErrorAt = now;
    n.statusAt = now;
  }

  /** Recomputes every node's state: healthy, degraded, suspect or gone, with reasons. */
  refreshHealth(now = Date.now()) {
    for (const n of this.nodes.values()) {
      const reasons = [];
      let state = 'healthy';
      if (n.goneAt) {
        state = 'gone';
        reasons.push(n.goneReason);
      } else {
        const by = [];
        for (const [k, t] of n.suspectedBy) {
          if (now - t > SUSPICION_TTL_MS) n.suspectedBy.delete(k);
          else by.push(k.slice(0, 8));
        }
        if (by.length) {
          state = 'suspect';
          reasons.push(`suspected by ${by.join(', ')}`);
        }
        const lh = n.status ? n.status.local_health : n.reported.local_health;
        if (lh > 0) reasons.push(`local health ${lh}`);
        if (n.outDeg < MIN_NEIGHBORS) reasons.push(`${n.outDeg} neighbour${n.outDeg === 1 ? '' : 's'} (< ${MIN_NEIGHBORS})`);
        if (n.status && n.status.leaving) reasons.push('leaving');
        if (n.pollError && now - n.pollErrorAt < POLL_ERROR_TTL_MS) reasons.push(`HTTP: ${n.pollError}`);
        if (state === 'healthy' && reasons.length) state = 'degraded';
      }
      if (state !== n.state) n.since = now;
      if (!n.since) n.since = now;
      n.state = state;
      n.reasons = reasons;
    }
  }

  /** Work load of a node: {running, queued, slots} or null when unknown. */
  load(n) {
    const w = n.status && n.status.work;
    if (w) return { running: w.running, queued: w.queued, slots: w.slots };
    if (n.reported.running !== undefined) return { running: n.reported.running, queued: n.reported.queued || 0, slots: n.reported.slots || 1 };
    return null;
  }

  /** Nodes whose lists point beyond what is known: where to look further. */
  frontier() {
    const count = new Map();
    for (const from of this.unknownTargets.values()) count.set(from, (count.get(from) || 0) + 1);
    return [...count.entries()].sort((a, b) => b[1] - a[1]).map(([id]) => this.nodes.get(id)).filter((n) => n && n.http && !n.goneAt);
  }
}
