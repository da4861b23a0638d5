// Node detail: a side panel with one node's status, neighbours (RTTs),
// blobs and recent events. For the connected node it uses the main event
// stream; for any other node it opens that node's own stream through
// `/node/{addr}/v1/events` while the panel is open (and polls its status
// if the server cannot stream from other nodes).

import { $, el, fill, fmtBytes, fmtDuration, fmtNum, shortId, setText } from './util.js';
import { api, nodeApi, nodePath, perNode } from './api.js';
import { LiveStream } from './live.js';
import { loadText } from './topology.js';

const MAX_EVENTS = 60;

export class NodeDetail {
  constructor(app) {
    this.app = app;
    this.id = null;
    this.stream = null;
    this.pollTimer = 0;
    this.events = [];
    this.status = null;
    this.blobs = null;
    this.trigger = null;
    this.drawer = $('node-detail');
    $('detail-close').addEventListener('click', () => this.close());
    document.addEventListener('keydown', (e) => {
      if (e.key === 'Escape' && !this.drawer.hidden) this.close();
    });
  }

  isObserver() {
    return this.id && this.id === this.app.cluster.observer;
  }

  open(id, trigger) {
    if (this.id !== id) this.stopFeeds();
    this.id = id;
    this.trigger = trigger || document.activeElement;
    this.events = this.isObserver() ? [...this.app.events] : [];
    this.status = this.isObserver() ? this.app.cluster.observerStatus : null;
    this.blobs = null;
    this.blobError = null;
    this.streamState = '';
    this.drawer.hidden = false;
    this.drawer.dataset.nodeId = id;
    this.app.setSelected(id);
    this.render();
    $('detail-title').focus();
    this.startFeeds();
    this.loadBlobs();
    this.loadRecent();
  }

  /** The node's own record of its latest events (`/v1/events/recent`). */
  async loadRecent() {
    const id = this.id;
    const n = this.app.cluster.get(id);
    try {
      const r = this.isObserver() || !n ? await api('/v1/events/recent') : await nodeApi(n.http, '/v1/events/recent');
      if (id !== this.id || !Array.isArray(r.events)) return;
      const old = r.events.map((x) => ({ at: x.at_unix_ms, ev: x.event }));
      const newest = old.length ? old[0].at : 0;
      const live = this.events.filter((x) => x.at > newest);
      this.events = [...live, ...old].slice(0, MAX_EVENTS);
      this.render();
    } catch {
      /* a node without the endpoint: live events only */
    }
  }

  close() {
    this.stopFeeds();
    this.drawer.hidden = true;
    this.id = null;
    this.app.setSelected(null);
    if (this.trigger && document.contains(this.trigger)) this.trigger.focus();
  }

  startFeeds() {
    const n = this.app.cluster.get(this.id);
    if (this.isObserver() || !n || !n.http) return;
    if (perNode.available === false) return;
    this.stream = new LiveStream(
      nodePath(n.http, '/v1/events'),
      {
        sample: (s) => {
          this.status = s.status;
          this.app.cluster.applyStatus(s.status);
          this.renderSoon();
        },
        node: (ev) => this.pushEvent(ev),
      },
      {
        onState: (st, info) => {
          this.streamState = st === 'live' ? '' : st === 'retrying' ? `stream lost (${info.why}); retrying` : 'connecting…';
          this.renderSoon();
        },
      },
    );
    this.stream.start();
  }

  stopFeeds() {
    if (this.stream) this.stream.stop();
    this.stream = null;
    clearTimeout(this.pollTimer);
  }

  /** From the main stream: the connected node's sample / events. */
  onSample(s) {
    if (!this.isObserver() || this.drawer.hidden) return;
    this.status = s.status;
    this.renderSoon();
  }

  onEvent(ev) {
    if (this.isObserver() && !this.drawer.hidden) this.pushEvent(ev);
  }

  pushEvent(ev) {
    this.events.unshift({ at: Date.now(), ev });
    if (this.events.length > MAX_EVENTS) this.events.length = MAX_EVENTS;
    this.renderSoon();
  }

  async loadBlobs() {
    const id = this.id;
    const n = this.app.cluster.get(id);
    try {
      const r = this.isObserver() || !n ? await api('/v1/blobs') : await nodeApi(n.http, '/v1/blobs');
      if (id === this.id) this.blobs = r;
    } catch (e) {
      if (id === this.id) this.blobError = perNode.available === false ? 'this server cannot query other nodes' : e.message;
    }
    if (!this.status && id === this.id && n && !this.isObserver() && !this.stream) {
      // No stream to this node: one status fetch.
      try {
        this.status = await nodeApi(n.http, '/v1/status');
      } catch {
        /* shown as unknown */
      }
    }
    this.render();
  }

  renderSoon() {
    if (this.renderQueued) return;
    this.renderQueued = true;
    requestAnimationFrame(() => {
      this.renderQueued = false;
      this.render();
    });
  }

  render() {
    if (!this.id || this.drawer.hidden) return;
    const c = this.app.cluster;
    const n = c.get(this.id);
    const st = this.status;
    const title = $('detail-title');
    title.tabIndex = -1;
    setText(title, `Node ${shortId(this.id)}`);
    const kv = (pairs) => el('dl', { class: 'kv' }, pairs.filter(Boolean).map(([k, v]) => [el('dt', {}, k), el('dd', {}, v)]));
    const parts = [];
    parts.push(
      kv([
        ['Id', el('span', { class: 'mono' }, this.id)],
        ['State', n ? el('span', {}, el('span', { class: `state ${n.state}` }, n.state), n.reasons.length ? ` ${n.reasons.join('; ')}` : '') : 'gone'],
        ['UDP address', el('span', { class: 'mono' }, (st && st.addr) || (n && n.addr) || '–')],
        ['HTTP address', el('span', { class: 'mono' }, (n && n.http) || '–')],
        n && typeof n.dist === 'number' ? ['Distance', this.isObserver() ? 'this is the connected node' : `${n.dist} link${n.dist === 1 ? '' : 's'} from the connected node`] : null,
        st ? ['Uptime', fmtDuration(st.uptime_ms)] : null,
        st ? ['Local health', `${st.local_health}${st.local_health > 0 ? ' (slow to accuse: overloaded or paused)' : ''}`] : null,
        st ? ['Passive peers', st.passive_count] : null,
        st && st.coord
          ? ['Network coordinate', `(${st.coord.x.toFixed(2)}, ${st.coord.y.toFixed(2)}) ms, height ${st.coord.h.toFixed(2)} ms, error ${(100 * st.coord.e).toFixed(0)} %`]
          : null,
        st ? ['Info items', st.info_items] : null,
        st ? ['Topology known', `${st.topology_nodes} nodes`] : null,
        st && st.work ? ['Work', `${st.work.running}/${st.work.slots} slots busy, ${st.work.queued} queued; home of ${st.work.homes} job(s), heir of ${st.work.heir_of}`] : null,
        st && st.work ? ['Blobs', `${st.work.blobs} (${fmtBytes(st.work.blob_bytes)})`] : null,
        st && st.leaving ? ['Leaving', 'yes: shutting down'] : null,
      ]),
    );
    if (this.streamState) parts.push(el('p', { class: 'help' }, this.streamState));
    if (!st) parts.push(el('p', { class: 'help' }, 'Waiting for this node’s status…'));

    parts.push(el('h3', {}, `Neighbours (${st ? st.neighbors.length : n ? n.outDeg : 0})`));
    if (st) {
      parts.push(
        el(
          'table',
          { class: 'data', id: 'detail-neighbours' },
          el('thead', {}, el('tr', {}, ['Node', 'Address', 'RTT', 'Link', 'Silent', 'State'].map((h, i) => el('th', { scope: 'col', class: i === 2 || i === 4 ? 'num' : null }, h)))),
          el(
            'tbody',
            {},
            st.neighbors.map((nb) =>
              el(
                'tr',
                { 'data-node-id': nb.node_id },
                el('td', {}, el('button', { type: 'button', class: 'linkish', onclick: () => this.app.openNode(nb.node_id) }, shortId(nb.node_id))),
                el('td', { class: 'mono' }, nb.addr),
                el('td', { class: 'num' }, nb.rtt_ms === null || nb.rtt_ms === undefined ? '–' : `${fmtNum(nb.rtt_ms)} ms`),
                el('td', {}, `${nb.long ? 'long' : 'short'} · ${nb.eager ? 'eager' : 'lazy'}`),
                el('td', { class: 'num' }, `${nb.silent_ms} ms`),
                el('td', {}, nb.suspect ? el('span', { class: 'state suspect' }, 'suspect') : 'ok'),
              ),
            ),
          ),
        ),
      );
    }

    const lt = n ? loadText(c, n) : '';
    if (lt) parts.push(el('p', { class: 'help' }, `Load: ${lt}`));

    parts.push(el('h3', {}, 'Blobs'));
    if (this.blobs) {
      const b = this.blobs;
      parts.push(el('p', { class: 'help' }, `${b.count} blobs, ${fmtBytes(b.bytes)} of ${fmtBytes(b.capacity)} (${b.pinned} pinned)`));
      if (b.blobs && b.blobs.length) {
        parts.push(
          el(
            'table',
            { class: 'data', id: 'detail-blobs' },
            el('thead', {}, el('tr', {}, el('th', { scope: 'col' }, 'Hash'), el('th', { scope: 'col' }, 'Kind'), el('th', { scope: 'col', class: 'num' }, 'Size'), el('th', { scope: 'col', class: 'num' }, 'Energy'), el('th', { scope: 'col', class: 'num' }, 'Holders'))),
            el(
              'tbody',
              {},
              b.blobs.slice(0, 100).map((x) => el('tr', {}, el('td', { class: 'mono', title: x.hash }, shortId(x.hash)), el('td', {}, x.kind), el('td', { class: 'num' }, fmtBytes(x.size)), el('td', { class: 'num' }, fmtNum(x.energy)), el('td', { class: 'num' }, (x.holders || []).length))),
            ),
          ),
        );
      }
      parts.push(el('button', { type: 'button', class: 'btn small', onclick: () => this.loadBlobs() }, 'Refresh blobs'));
    } else {
      parts.push(el('p', { class: 'help' }, this.blobError ? `Blobs unavailable: ${this.blobError}` : 'Loading…'));
    }

    parts.push(el('h3', {}, 'Recent events'));
    const shown = this.events.filter((x) => !(x.ev.event === 'item_delivered' && x.ev.id && x.ev.id.space === 'topology'));
    const topo = this.events.length - shown.length;
    parts.push(
      shown.length
        ? el('ol', { class: 'events', id: 'detail-events' }, shown.slice(0, 40).map((x) => el('li', {}, el('time', {}, new Date(x.at).toLocaleTimeString('en-GB')), describe(x.ev))))
        : el('p', { class: 'help' }, 'No membership or item events recorded yet.'),
    );
    if (topo) parts.push(el('p', { class: 'note' }, `(${topo} neighbour-list deliveries not shown)`));
    fill($('detail-body'), parts);
  }
}

export function describe(ev) {
  const s = (id) => shortId(id);
  switch (ev.event) {
    case 'neighbor_up':
      return `link up with ${s(ev.id)} (${ev.addr})${ev.long ? ', long link' : ''}`;
    case 'neighbor_down':
      return `link down with ${s(ev.id)}: ${ev.reason}`;
    case 'suspect':
      return `suspects ${s(ev.id)}`;
    case 'item_delivered':
      return `received ${ev.id.space}/${ev.id.key} v${ev.id.version} (energy ${fmtNum(ev.energy)}, ${ev.hops} hops, from ${s(ev.from)})`;
    default:
      return JSON.stringify(ev);
  }
}
