// Topology view: the graph, and the same nodes as an accessible text list.

import { $, el, setAttr, setText, shortId } from './util.js';
import { GraphView } from './graph.js';

/** Describes a node's load in words, or '' when unknown. */
export function loadText(cluster, n) {
  const ld = cluster.load(n);
  if (!ld) return '';
  if (!ld.running && !ld.queued) return 'idle';
  return `${ld.running}/${ld.slots} busy${ld.queued ? `, ${ld.queued} queued` : ''}`;
}

/** A hover tooltip for a graph canvas (the list carries the same facts for assistive tech). */
export function makeTooltip(tip, app, extra) {
  return (n, e) => {
    if (!n) {
      tip.hidden = true;
      return;
    }
    const rect = tip.parentElement.getBoundingClientRect();
    const lines = [el('div', {}, el('b', {}, shortId(n.id)), ` ${n.addr || ''}`), el('div', {}, `${n.state}${n.reasons.length ? ` — ${n.reasons.join('; ')}` : ''}`)];
    const lt = loadText(app.cluster, n);
    lines.push(el('div', {}, `${n.outDeg} neighbours${typeof n.dist === 'number' ? ` · ${n.dist} link${n.dist === 1 ? '' : 's'} away` : ''}${lt ? ` · ${lt}` : ''}`));
    if (extra) {
      const x = extra(n);
      if (x) lines.push(el('div', {}, x));
    }
    tip.replaceChildren(...lines);
    tip.hidden = false;
    const x = e.clientX - rect.left + 14;
    const y = e.clientY - rect.top + 14;
    tip.style.left = `${Math.min(x, rect.width - tip.offsetWidth - 8)}px`;
    tip.style.top = `${Math.min(y, rect.height - tip.offsetHeight - 8)}px`;
  };
}

export class TopologyView {
  constructor(app) {
    this.app = app;
    this.items = new Map();
    this.list = $('node-list');
    this.filter = $('node-filter');
    this.graph = new GraphView($('topo-canvas'), app.layout, {
      mode: 'health',
      visible: () => app.view === 'topology',
      onSelect: (n) => app.openNode(n.id),
      tooltip: makeTooltip($('topo-tip'), app),
      overlay: () => ({ homes: app.jobs.homes() }),
    });
    this.filter.addEventListener('input', () => this.update());
    $('topo-layout').addEventListener('change', (e) => {
      app.layout.setMode(e.target.value);
      this.graph.resetView();
    });
    for (const b of document.querySelectorAll('#view-topology [data-zoom]')) {
      b.addEventListener('click', () => {
        const g = this.graph;
        if (b.dataset.zoom === 'fit') g.resetView();
        else g.zoomAt(b.dataset.zoom === 'in' ? 1.3 : 1 / 1.3, g.w / 2, g.h / 2);
      });
    }
    this.list.addEventListener('click', (e) => {
      const li = e.target.closest('li[data-node-id]');
      if (li) app.openNode(li.dataset.nodeId, e.target.closest('button'));
    });
    const hl = (e) => {
      const li = e.target.closest && e.target.closest('li[data-node-id]');
      const id = li ? li.dataset.nodeId : null;
      if (this.graph.highlight !== id) {
        this.graph.highlight = id;
        app.layout.wake();
      }
    };
    this.list.addEventListener('focusin', hl);
    this.list.addEventListener('mouseover', hl);
    this.list.addEventListener('mouseleave', () => {
      this.graph.highlight = null;
      app.layout.wake();
    });
  }

  show() {
    this.graph.resize();
    this.update();
  }

  update() {
    const c = this.app.cluster;
    const t0 = performance.now();
    const alive = c.alive();
    const q = this.filter.value.trim().toLowerCase();
    const shown = q
      ? alive.filter((n) => n.id.includes(q) || (n.addr || '').includes(q) || (n.http || '').includes(q) || n.state.includes(q))
      : alive;
    const keep = new Set(shown.map((n) => n.id));
    for (const [id, li] of this.items) {
      if (!keep.has(id)) {
        li.remove();
        this.items.delete(id);
      }
    }
    let prev = null;
    for (const n of shown) {
      let li = this.items.get(n.id);
      if (!li) {
        li = el(
          'li',
          { 'data-node-id': n.id },
          el('button', { type: 'button' }, el('span', { class: 'dot', 'aria-hidden': 'true' }), el('span', { class: 'nid' }), el('span', { class: 'naddr' }), el('span', { class: 'nstate' })),
        );
        this.items.set(n.id, li);
      }
      const observer = n.id === c.observer;
      setAttr(li, 'data-addr', n.addr || '');
      setAttr(li, 'data-http', n.http || '');
      setAttr(li, 'data-state', n.state);
      setAttr(li, 'data-hops', n.hops === null || n.hops === undefined ? '' : n.hops);
      setAttr(li, 'data-observer', observer);
      const b = li.firstChild;
      const [, nid, naddr, nstate] = b.children;
      setText(nid, shortId(n.id));
      setText(naddr, n.addr || '');
      const lt = loadText(c, n);
      const parts = [n.state, ...n.reasons.slice(0, 1), `${n.outDeg} links`];
      if (lt) parts.push(lt);
      if (observer) parts.push('connected');
      setText(nstate, parts.join(' · '));
      setAttr(b, 'aria-label', `Node ${n.id} at ${n.addr}: ${n.state}${n.reasons.length ? ` (${n.reasons.join('; ')})` : ''}, ${n.outDeg} neighbours${lt ? `, ${lt}` : ''}${observer ? ', connected node' : ''}`);
      const want = prev ? prev.nextSibling : this.list.firstChild;
      if (want !== li) this.list.insertBefore(li, want);
      prev = li;
    }
    setText($('node-count'), q ? `${shown.length} of ${alive.length}` : `${alive.length}`);
    const links = [...c.links.values()].filter((l) => !l.fadeAt);
    const long = links.filter((l) => l.long).length;
    const bad = alive.filter((n) => n.state !== 'healthy').length;
    setAttr(this.graph.canvas, 'aria-label', `Network graph: ${alive.length} nodes, ${links.length} links (${long} long). ${bad ? `${bad} not healthy.` : 'All healthy.'} The node list beside it has the same information.`);
    this.app.perf.listMs = performance.now() - t0;
  }
}

