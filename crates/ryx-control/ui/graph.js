// The network drawing: a force layout shared by every graph view, and a
// <canvas> renderer per view.
//
// Layout: springs along links, short-range repulsion through a uniform grid
// (each node only meets the nodes of its 3×3 cells, so a step is O(n) for a
// bounded density instead of O(n²)), and a weak pull to the centre. It
// cools down and stops: frames are only drawn while something moves
// (layout still hot, nodes fading out, pulses, the view easing to fit).
//
// Or by network coordinates (`mode = 'coords'`): each node that reports a
// Vivaldi coordinate is pulled to its point (milliseconds scaled so that the
// spread fits), so that distance on screen is predicted round-trip time;
// repulsion keeps the nodes of one site apart, and nodes without a
// coordinate keep the force layout.

import { clamp, cssVar, shortId } from './util.js';
import { FADE_MS } from './model.js';

const ALPHA_MIN = 0.004;
const ALPHA_DECAY = 0.022;
const VELOCITY_KEEP = 0.6;
const LINK_DISTANCE = 34;
const CUTOFF = 110;
const REPULSION = 55;
const GRAVITY = 0.012;
const MAX_MOVE = 24;

export class Layout {
  constructor(cluster) {
    this.cluster = cluster;
    this.alpha = 1;
    this.views = new Set();
    this.running = false;
    this.version = -1;
    this.arr = [];
    this.linkArr = [];
    this.grid = new Map();
    this.benchUntil = 0;
    this.perf = { fps: 0, frames: 0, stepMs: 0, drawMs: 0, frameMs: 0, nodes: 0, links: 0 };
    this.fpsWindow = [];
    this.mode = 'force';
    this.coordScale = 1;
    this.coordMid = [0, 0];
    this.frame = this.frame.bind(this);
  }

  /** 'force' or 'coords'. */
  setMode(mode) {
    this.mode = mode === 'coords' ? 'coords' : 'force';
    this.reheat(1);
  }

  register(view) {
    this.views.add(view);
  }

  reheat(a = 0.5) {
    this.alpha = Math.max(this.alpha, a);
    this.wake();
  }

  wake() {
    if (!this.running) {
      this.running = true;
      requestAnimationFrame(this.frame);
    }
  }

  /**
   * Keeps the layout hot and redraws every frame for `ms`, then reports
   * frame rate and per-frame cost (for measurements).
   */
  benchmark(ms = 5000) {
    this.benchUntil = performance.now() + ms;
    this.fpsWindow = [];
    this.benchStats = { frames: 0, step: 0, draw: 0, worst: 0, start: performance.now() };
    this.wake();
    return new Promise((resolve) => {
      setTimeout(() => {
        const s = this.benchStats;
        const secs = (performance.now() - s.start) / 1000;
        resolve({
          nodes: this.perf.nodes,
          links: this.perf.links,
          frames: s.frames,
          fps: s.frames / secs,
          stepMsAvg: s.step / Math.max(1, s.frames),
          drawMsAvg: s.draw / Math.max(1, s.frames),
          worstFrameMs: s.worst,
        });
      }, ms + 50);
    });
  }

  refreshArrays() {
    if (this.version === this.cluster.version) return;
    this.version = this.cluster.version;
    this.arr = [];
    for (const n of this.cluster.nodes.values()) if (!n.goneAt) this.arr.push(n);
    const deg = new Map();
    this.linkArr = [];
    for (const l of this.cluster.links.values()) {
      if (l.fadeAt || !l.a || !l.b) continue;
      this.linkArr.push(l);
      deg.set(l.a, (deg.get(l.a) || 0) + 1);
      deg.set(l.b, (deg.get(l.b) || 0) + 1);
    }
    for (const l of this.linkArr) {
      const da = deg.get(l.a);
      const db = deg.get(l.b);
      l.strength = 1 / Math.min(da, db);
      l.bias = da / (da + db);
    }
  }

  frame(ts) {
    const t0 = performance.now();
    const bench = t0 < this.benchUntil;
    if (bench) this.alpha = Math.max(this.alpha, 0.3);
    this.refreshArrays();
    let busy = false;
    if (this.alpha > ALPHA_MIN) {
      this.step();
      busy = true;
    }
    const t1 = performance.now();
    const fading = this.cluster.prune(Date.now());
    if (fading) this.version = -1;
    busy = busy || fading;
    for (const v of this.views) {
      if (v.visible()) busy = v.draw(ts) || busy;
    }
    const t2 = performance.now();
    const p = this.perf;
    p.frames++;
    p.stepMs = p.stepMs * 0.9 + (t1 - t0) * 0.1;
    p.drawMs = p.drawMs * 0.9 + (t2 - t1) * 0.1;
    p.frameMs = p.stepMs + p.drawMs;
    p.nodes = this.arr.length;
    p.links = this.linkArr.length;
    this.fpsWindow.push(t2);
    while (this.fpsWindow.length && this.fpsWindow[0] < t2 - 1000) this.fpsWindow.shift();
    p.fps = this.fpsWindow.length;
    if (bench && this.benchStats) {
      const s = this.benchStats;
      s.frames++;
      s.step += t1 - t0;
      s.draw += t2 - t1;
      s.worst = Math.max(s.worst, t2 - t0);
    }
    if (busy || bench) requestAnimationFrame(this.frame);
    else {
      this.running = false;
      p.fps = 0;
      this.fpsWindow = [];
    }
  }

  /**
   * Pixels per millisecond, so that the coordinates span about 600 px: the
   * 5th to 95th percentile of the points of nodes fairly sure of their
   * place (error ≤ 1), so that one node still placing itself, or one
   * claiming a far-off point, does not shrink everyone else to a dot.
   */
  fitCoords() {
    let pts = this.arr.filter((n) => n.coord && n.coord.e <= 1);
    if (!pts.length) pts = this.arr.filter((n) => n.coord);
    const xs = pts.map((n) => n.coord.x).filter(Number.isFinite).sort((a, b) => a - b);
    const ys = pts.map((n) => n.coord.y).filter(Number.isFinite).sort((a, b) => a - b);
    if (!xs.length || !ys.length) {
      this.coordScale = 1;
      this.coordMid = [0, 0];
      return;
    }
    const at = (v, q) => v[Math.min(v.length - 1, Math.floor(q * v.length))];
    const [x0, x1, y0, y1] = [at(xs, 0.05), at(xs, 0.95), at(ys, 0.05), at(ys, 0.95)];
    const span = Math.max(x1 - x0, y1 - y0);
    this.coordScale = span > 1e-6 ? 600 / span : 1;
    this.coordMid = [(x0 + x1) / 2, (y0 + y1) / 2];
  }

  step() {
    const nodes = this.arr;
    const a = this.alpha;
    const byCoord = this.mode === 'coords';
    if (byCoord) this.fitCoords();
    const grid = this.grid;
    grid.clear();
    const key = (gx, gy) => gx * 65599 + gy;
    for (let i = 0; i < nodes.length; i++) {
      const n = nodes[i];
      n.gx = Math.floor(n.x / CUTOFF);
      n.gy = Math.floor(n.y / CUTOFF);
      const k = key(n.gx, n.gy);
      let c = grid.get(k);
      if (!c) grid.set(k, (c = []));
      c.push(i);
    }
    const c2 = CUTOFF * CUTOFF;
    const s = REPULSION * a;
    for (let i = 0; i < nodes.length; i++) {
      const n = nodes[i];
      for (let dx = -1; dx <= 1; dx++) {
        for (let dy = -1; dy <= 1; dy++) {
          const cell = grid.get(key(n.gx + dx, n.gy + dy));
          if (!cell) continue;
          for (const j of cell) {
            if (j <= i) continue;
            const m = nodes[j];
            let ddx = n.x - m.x;
            let ddy = n.y - m.y;
            let d2 = ddx * ddx + ddy * ddy;
            if (d2 > c2) continue;
            if (d2 < 0.25) {
              ddx = Math.random() - 0.5;
              ddy = Math.random() - 0.5;
              d2 = ddx * ddx + ddy * ddy + 0.25;
            }
            const f = s / d2;
            n.vx += ddx * f;
            n.vy += ddy * f;
            m.vx -= ddx * f;
            m.vy -= ddy * f;
          }
        }
      }
    }
    for (const l of this.linkArr) {
      const p = l.a;
      const q = l.b;
      if (byCoord && p.coord && q.coord) continue;
      const dx = q.x + q.vx - p.x - p.vx || 1e-3;
      const dy = q.y + q.vy - p.y - p.vy || 1e-3;
      const d = Math.sqrt(dx * dx + dy * dy);
      const want = l.long ? LINK_DISTANCE * 1.6 : LINK_DISTANCE;
      const f = ((d - want) / d) * a * l.strength;
      q.vx -= dx * f * l.bias;
      q.vy -= dy * f * l.bias;
      p.vx += dx * f * (1 - l.bias);
      p.vy += dy * f * (1 - l.bias);
    }
    for (const n of nodes) {
      if (byCoord && n.coord) {
        const tx = (n.coord.x - this.coordMid[0]) * this.coordScale;
        const ty = (n.coord.y - this.coordMid[1]) * this.coordScale;
        n.vx += (tx - n.x) * 0.2;
        n.vy += (ty - n.y) * 0.2;
      } else {
        n.vx -= n.x * GRAVITY * a;
        n.vy -= n.y * GRAVITY * a;
      }
      n.vx *= VELOCITY_KEEP;
      n.vy *= VELOCITY_KEEP;
      n.x += clamp(n.vx, -MAX_MOVE, MAX_MOVE);
      n.y += clamp(n.vy, -MAX_MOVE, MAX_MOVE);
    }
    this.alpha *= 1 - ALPHA_DECAY;
  }
}

/** Colour ramp for energy (0..1): deep blue → teal → amber → near white. */
const RAMP = [
  [0.0, [40, 60, 120]],
  [0.35, [20, 150, 160]],
  [0.7, [240, 180, 40]],
  [1.0, [255, 244, 200]],
];
export function energyColor(f) {
  const x = clamp(f, 0, 1);
  for (let i = 1; i < RAMP.length; i++) {
    const [p1, c1] = RAMP[i];
    const [p0, c0] = RAMP[i - 1];
    if (x <= p1) {
      const t = (x - p0) / (p1 - p0);
      const c = c0.map((v, k) => Math.round(v + (c1[k] - v) * t));
      return `rgb(${c[0]},${c[1]},${c[2]})`;
    }
  }
  return 'rgb(255,244,200)';
}
export const ENERGY_BUCKETS = 12;

export class GraphView {
  /**
   * @param {HTMLCanvasElement} canvas
   * @param {Layout} layout
   * @param {{mode: 'health'|'energy', visible: () => boolean, onSelect: (n) => void, tooltip?: HTMLElement, overlay: () => any}} opts
   */
  constructor(canvas, layout, opts) {
    this.canvas = canvas;
    this.ctx = canvas.getContext('2d');
    this.layout = layout;
    this.cluster = layout.cluster;
    this.opts = opts;
    this.mode = opts.mode;
    this.scale = 1;
    this.tx = 0;
    this.ty = 0;
    this.autoFit = true;
    this.hover = null;
    this.highlight = null;
    this.selected = null;
    this.dpr = window.devicePixelRatio || 1;
    this.w = 0;
    this.h = 0;
    this.refreshColors();
    layout.register(this);
    new ResizeObserver(() => this.resize()).observe(canvas);
    this.resize();
    this.bindInput();
  }

  visible() {
    return this.opts.visible() && this.w > 0;
  }

  refreshColors() {
    this.colors = {
      healthy: cssVar('--ok'),
      degraded: cssVar('--warn'),
      suspect: cssVar('--bad'),
      gone: cssVar('--gone'),
      link: cssVar('--link'),
      long: cssVar('--long'),
      load: cssVar('--load'),
      text: cssVar('--text'),
      muted: cssVar('--muted'),
      accent: cssVar('--accent'),
      ring: cssVar('--ring'),
      bg: cssVar('--graph-bg'),
      absent: cssVar('--absent'),
    };
    this.layout.wake();
  }

  resize() {
    const r = this.canvas.getBoundingClientRect();
    this.dpr = window.devicePixelRatio || 1;
    const w = Math.max(0, Math.round(r.width * this.dpr));
    const h = Math.max(0, Math.round(r.height * this.dpr));
    if (w !== this.w || h !== this.h) {
      this.w = w;
      this.h = h;
      this.canvas.width = w;
      this.canvas.height = h;
      this.layout.wake();
    }
  }

  toScreen(n) {
    return [n.x * this.scale + this.tx, n.y * this.scale + this.ty];
  }

  nodeRadius(count) {
    const css = count <= 30 ? 9 : count <= 120 ? 7 : count <= 300 ? 5 : 4;
    return css * this.dpr * clamp(Math.sqrt(this.scale / (this.fitScale || this.scale)), 0.7, 2.2);
  }

  /** Eases the view to fit the graph; returns whether it is still moving. */
  fit() {
    const nodes = this.layout.arr;
    if (!nodes.length || !this.w) return false;
    let x0 = Infinity;
    let y0 = Infinity;
    let x1 = -Infinity;
    let y1 = -Infinity;
    for (const n of nodes) {
      if (n.x < x0) x0 = n.x;
      if (n.x > x1) x1 = n.x;
      if (n.y < y0) y0 = n.y;
      if (n.y > y1) y1 = n.y;
    }
    const m = 40 * this.dpr;
    const bw = Math.max(x1 - x0, 60);
    const bh = Math.max(y1 - y0, 60);
    const s = clamp(Math.min((this.w - 2 * m) / bw, (this.h - 2 * m) / bh), 0.05, 8 * this.dpr);
    this.fitScale = s;
    const tx = this.w / 2 - ((x0 + x1) / 2) * s;
    const ty = this.h / 2 - ((y0 + y1) / 2) * s;
    if (!this.autoFit) return false;
    const k = this.first ? 0.25 : 1;
    this.first = true;
    this.scale += (s - this.scale) * k;
    this.tx += (tx - this.tx) * k;
    this.ty += (ty - this.ty) * k;
    return Math.abs(s - this.scale) / s > 0.002 || Math.abs(tx - this.tx) > 0.5 || Math.abs(ty - this.ty) > 0.5;
  }

  /** Draws one frame. Returns whether more frames are needed. */
  draw(ts) {
    const ctx = this.ctx;
    const c = this.colors;
    const now = Date.now();
    let busy = this.fit();
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, this.w, this.h);
    const nodes = this.cluster.nodes;
    const count = this.layout.arr.length;
    const r = this.nodeRadius(count);
    const dpr = this.dpr;
    const S = this.scale;
    const TX = this.tx;
    const TY = this.ty;
    const overlay = this.opts.overlay ? this.opts.overlay() : {};
    const energy = this.mode === 'energy' ? overlay.energy : null;

    // Links: two batched paths, plus fading ones one by one.
    const short = new Path2D();
    const long = new Path2D();
    const fadingLinks = [];
    for (const l of this.cluster.links.values()) {
      if (!l.a || !l.b) continue;
      if (l.fadeAt) {
        fadingLinks.push(l);
        continue;
      }
      const p = l.long ? long : short;
      p.moveTo(l.a.x * S + TX, l.a.y * S + TY);
      p.lineTo(l.b.x * S + TX, l.b.y * S + TY);
    }
    ctx.lineCap = 'round';
    ctx.globalAlpha = energy ? 0.45 : 0.9;
    ctx.lineWidth = Math.max(1, 1.3 * dpr);
    ctx.strokeStyle = c.link;
    ctx.setLineDash([]);
    ctx.stroke(short);
    ctx.strokeStyle = c.long;
    ctx.lineWidth = Math.max(1, 1.6 * dpr);
    ctx.setLineDash([6 * dpr, 5 * dpr]);
    ctx.stroke(long);
    for (const l of fadingLinks) {
      const f = 1 - (now - l.fadeAt) / 1500;
      if (f <= 0) continue;
      ctx.globalAlpha = f * 0.8;
      ctx.strokeStyle = c.suspect;
      ctx.beginPath();
      ctx.moveTo(l.a.x * S + TX, l.a.y * S + TY);
      ctx.lineTo(l.b.x * S + TX, l.b.y * S + TY);
      ctx.stroke();
      busy = true;
    }
    ctx.setLineDash([]);
    ctx.globalAlpha = 1;

    // Nodes, batched by fill colour.
    const groups = new Map();
    const group = (color) => {
      let g = groups.get(color);
      if (!g) groups.set(color, (g = new Path2D()));
      return g;
    };
    const fadingNodes = [];
    const loads = [];
    for (const n of nodes.values()) {
      if (n.goneAt) {
        fadingNodes.push(n);
        continue;
      }
      const x = n.x * S + TX;
      const y = n.y * S + TY;
      if (x < -20 || y < -20 || x > this.w + 20 || y > this.h + 20) continue;
      let color;
      if (energy) {
        const e = energy.byNode.get(n.id);
        if (e && e.energy > 0) {
          const b = Math.round((e.energy / (energy.max || 1)) * ENERGY_BUCKETS) / ENERGY_BUCKETS;
          color = energyColor(b);
        } else color = c.absent;
      } else {
        color = c[n.state] || c.healthy;
      }
      const g = group(color);
      g.moveTo(x + r, y);
      g.arc(x, y, r, 0, Math.PI * 2);
      if (!energy || overlay.showLoad) {
        const ld = this.cluster.load(n);
        if (ld && (ld.running > 0 || ld.queued > 0)) loads.push([x, y, ld]);
      }
    }
    for (const [color, path] of groups) {
      ctx.fillStyle = color;
      ctx.fill(path);
    }
    // Node outlines for contrast against links.
    ctx.lineWidth = Math.max(1, 1.2 * dpr);
    ctx.strokeStyle = c.bg;
    for (const path of groups.values()) ctx.stroke(path);

    // Suspects get a second ring so the state does not rely on colour alone.
    ctx.strokeStyle = c.suspect;
    ctx.lineWidth = 2 * dpr;
    ctx.setLineDash([3 * dpr, 3 * dpr]);
    ctx.beginPath();
    for (const n of nodes.values()) {
      if (n.state !== 'suspect' || n.goneAt) continue;
      const [x, y] = this.toScreen(n);
      ctx.moveTo(x + r + 4 * dpr, y);
      ctx.arc(x, y, r + 4 * dpr, 0, Math.PI * 2);
    }
    ctx.stroke();
    ctx.setLineDash([]);

    // Load: an arc around the node, the share of its work slots busy; a
    // thicker arc when units are also queued.
    for (const [x, y, ld] of loads) {
      const frac = ld.slots ? clamp(ld.running / ld.slots, 0, 1) : 1;
      ctx.strokeStyle = c.load;
      ctx.lineWidth = (ld.queued > 0 ? 3.5 : 2.5) * dpr;
      ctx.beginPath();
      ctx.arc(x, y, r + 3 * dpr, -Math.PI / 2, -Math.PI / 2 + Math.max(frac, 0.08) * Math.PI * 2);
      ctx.stroke();
    }

    // Dead nodes fade out.
    for (const n of fadingNodes) {
      const f = 1 - (now - n.goneAt) / FADE_MS;
      if (f <= 0) continue;
      busy = true;
      const [x, y] = this.toScreen(n);
      ctx.globalAlpha = f;
      ctx.fillStyle = c.gone;
      ctx.beginPath();
      ctx.arc(x, y, r, 0, Math.PI * 2);
      ctx.fill();
      ctx.strokeStyle = c.suspect;
      ctx.lineWidth = 1.5 * dpr;
      const k = r * 0.6;
      ctx.beginPath();
      ctx.moveTo(x - k, y - k);
      ctx.lineTo(x + k, y + k);
      ctx.moveTo(x + k, y - k);
      ctx.lineTo(x - k, y + k);
      ctx.stroke();
      ctx.globalAlpha = 1;
    }

    // Energy pulses: a ring per node, started in hop order.
    if (energy && energy.pulseStart) {
      const t = now - energy.pulseStart;
      for (const [id, e] of energy.byNode) {
        const n = nodes.get(id);
        if (!n || n.goneAt || !(e.energy > 0)) continue;
        const dt = t - (e.hops || 0) * 350;
        if (dt < 0) {
          busy = true;
          continue;
        }
        if (dt > 900) continue;
        busy = true;
        const f = dt / 900;
        const [x, y] = this.toScreen(n);
        ctx.globalAlpha = 1 - f;
        ctx.strokeStyle = energyColor(e.energy / (energy.max || 1));
        ctx.lineWidth = 2.5 * dpr;
        ctx.beginPath();
        ctx.arc(x, y, r + f * 22 * dpr, 0, Math.PI * 2);
        ctx.stroke();
      }
      ctx.globalAlpha = 1;
    }

    // Job homes: a small square badge.
    if (overlay.homes && overlay.homes.size) {
      ctx.fillStyle = c.accent;
      for (const id of overlay.homes) {
        const n = nodes.get(id);
        if (!n || n.goneAt) continue;
        const [x, y] = this.toScreen(n);
        const k = Math.max(3, r * 0.55);
        ctx.fillRect(x + r * 0.55, y - r * 0.55 - k, k, k);
      }
    }

    // Rings: connected node, selection, hover/keyboard highlight.
    const ring = (n, color, width, gap) => {
      if (!n || n.goneAt) return;
      const [x, y] = this.toScreen(n);
      ctx.strokeStyle = color;
      ctx.lineWidth = width * dpr;
      ctx.beginPath();
      ctx.arc(x, y, r + gap * dpr, 0, Math.PI * 2);
      ctx.stroke();
    };
    ring(nodes.get(this.cluster.observer), c.ring, 2, 2.5);
    ring(nodes.get(this.selected), c.accent, 3, 6);
    ring(nodes.get(this.hover), c.accent, 2, 6);
    ring(nodes.get(this.highlight), c.accent, 2, 6);

    // Labels when there is room.
    const spacing = LINK_DISTANCE * S;
    const fontPx = Math.round(12 * dpr);
    ctx.font = `${fontPx}px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace`;
    ctx.textAlign = 'center';
    ctx.textBaseline = 'top';
    const label = (n, strong) => {
      if (!n || n.goneAt) return;
      const [x, y] = this.toScreen(n);
      let text = shortId(n.id);
      if (energy) {
        const e = energy.byNode.get(n.id);
        if (e && e.energy > 0) text += ` ${e.energy.toFixed(1)}`;
      }
      ctx.lineWidth = 3 * dpr;
      ctx.strokeStyle = c.bg;
      ctx.strokeText(text, x, y + r + 3 * dpr);
      ctx.fillStyle = strong ? c.text : c.muted;
      ctx.fillText(text, x, y + r + 3 * dpr);
    };
    if (count <= 60 || spacing > 70 * dpr) {
      for (const n of nodes.values()) label(n, false);
    }
    label(nodes.get(this.cluster.observer), true);
    label(nodes.get(this.selected), true);
    label(nodes.get(this.hover), true);
    label(nodes.get(this.highlight), true);
    return busy;
  }

  nodeAt(clientX, clientY) {
    const rect = this.canvas.getBoundingClientRect();
    const x = (clientX - rect.left) * this.dpr;
    const y = (clientY - rect.top) * this.dpr;
    const r = this.nodeRadius(this.layout.arr.length) + 5 * this.dpr;
    let best = null;
    let bd = r * r;
    for (const n of this.cluster.nodes.values()) {
      if (n.goneAt) continue;
      const [sx, sy] = this.toScreen(n);
      const d = (sx - x) ** 2 + (sy - y) ** 2;
      if (d < bd) {
        bd = d;
        best = n;
      }
    }
    return best;
  }

  zoomAt(factor, px, py) {
    const s = clamp(this.scale * factor, 0.02, 20);
    const f = s / this.scale;
    this.tx = px - (px - this.tx) * f;
    this.ty = py - (py - this.ty) * f;
    this.scale = s;
    this.autoFit = false;
    this.layout.wake();
  }

  resetView() {
    this.autoFit = true;
    this.layout.wake();
  }

  bindInput() {
    const cv = this.canvas;
    let down = null;
    cv.addEventListener('pointerdown', (e) => {
      down = { x: e.clientX, y: e.clientY, tx: this.tx, ty: this.ty, moved: false };
      cv.setPointerCapture(e.pointerId);
    });
    cv.addEventListener('pointermove', (e) => {
      if (down) {
        const dx = (e.clientX - down.x) * this.dpr;
        const dy = (e.clientY - down.y) * this.dpr;
        if (Math.abs(dx) + Math.abs(dy) > 4 * this.dpr) down.moved = true;
        if (down.moved) {
          this.tx = down.tx + dx;
          this.ty = down.ty + dy;
          this.autoFit = false;
          this.layout.wake();
        }
        return;
      }
      const n = this.nodeAt(e.clientX, e.clientY);
      const id = n ? n.id : null;
      if (id !== this.hover) {
        this.hover = id;
        cv.style.cursor = n ? 'pointer' : 'grab';
        this.layout.wake();
      }
      if (this.opts.tooltip) this.opts.tooltip(n, e);
    });
    cv.addEventListener('pointerleave', () => {
      this.hover = null;
      if (this.opts.tooltip) this.opts.tooltip(null);
      this.layout.wake();
    });
    cv.addEventListener('pointerup', (e) => {
      if (down && !down.moved) {
        const n = this.nodeAt(e.clientX, e.clientY);
        if (n) this.opts.onSelect(n);
      }
      down = null;
    });
    cv.addEventListener(
      'wheel',
      (e) => {
        e.preventDefault();
        const rect = cv.getBoundingClientRect();
        this.zoomAt(Math.exp(-e.deltaY * 0.0015), (e.clientX - rect.left) * this.dpr, (e.clientY - rect.top) * this.dpr);
      },
      { passive: false },
    );
    cv.addEventListener('dblclick', () => this.resetView());
    cv.addEventListener('keydown', (e) => {
      const step = 60 * this.dpr;
      const handled = {
        '+': () => this.zoomAt(1.25, this.w / 2, this.h / 2),
        '=': () => this.zoomAt(1.25, this.w / 2, this.h / 2),
        '-': () => this.zoomAt(0.8, this.w / 2, this.h / 2),
        0: () => this.resetView(),
        ArrowLeft: () => this.pan(step, 0),
        ArrowRight: () => this.pan(-step, 0),
        ArrowUp: () => this.pan(0, step),
        ArrowDown: () => this.pan(0, -step),
      }[e.key];
      if (handled) {
        e.preventDefault();
        handled();
      }
    });
  }

  pan(dx, dy) {
    this.tx += dx;
    this.ty += dy;
    this.autoFit = false;
    this.layout.wake();
  }
}
