// Time-series line charts on <canvas>, with an HTML caption that carries
// the current values as text (for screen readers, tests and people).

import { cssVar, el, setText } from './util.js';

export class LineChart {
  /**
   * @param {HTMLElement} host where the <figure> goes
   * @param {{id: string, title: string, series: {label: string, color: string}[], fmt: (x: number) => string, windowSec?: number, note?: string}} spec
   */
  constructor(host, spec) {
    this.spec = spec;
    this.windowMs = (spec.windowSec || 300) * 1000;
    this.points = []; // [t, v0, v1, ...]
    this.dirty = true;
    this.values = spec.series.map(() => el('span', { class: 'val' }, '–'));
    const legend = el(
      'ul',
      { class: 'legend' },
      spec.series.map((s, i) => el('li', {}, el('span', { class: 'swatch', style: `--c: var(${s.color})`, 'aria-hidden': 'true' }), `${s.label} `, this.values[i])),
    );
    this.canvas = el('canvas', { 'aria-hidden': 'true' });
    this.figure = el(
      'figure',
      { class: 'chart', id: spec.id, 'aria-labelledby': `${spec.id}-title` },
      el('figcaption', {}, el('h3', { id: `${spec.id}-title` }, spec.title), legend, spec.note ? el('p', { class: 'note' }, spec.note) : null),
      this.canvas,
    );
    host.append(this.figure);
    new ResizeObserver(() => {
      this.dirty = true;
      this.draw();
    }).observe(this.canvas);
  }

  clear() {
    this.points = [];
    this.values.forEach((v) => setText(v, '–'));
    this.dirty = true;
  }

  /** Adds a point (values may be null when unknown). */
  push(t, values) {
    this.points.push([t, ...values]);
    const cut = t - this.windowMs - 5000;
    while (this.points.length && this.points[0][0] < cut) this.points.shift();
    values.forEach((v, i) => setText(this.values[i], v === null || v === undefined ? '–' : this.spec.fmt(v)));
    this.dirty = true;
  }

  draw() {
    if (!this.dirty) return;
    const cv = this.canvas;
    const rect = cv.getBoundingClientRect();
    if (!rect.width) return;
    this.dirty = false;
    const dpr = window.devicePixelRatio || 1;
    const W = Math.round(rect.width * dpr);
    const H = Math.round(rect.height * dpr);
    if (cv.width !== W || cv.height !== H) {
      cv.width = W;
      cv.height = H;
    }
    const ctx = cv.getContext('2d');
    ctx.clearRect(0, 0, W, H);
    const pts = this.points;
    const tNow = pts.length ? pts[pts.length - 1][0] : Date.now();
    // The window grows with the data, from one minute up to its full length.
    const span = pts.length ? Math.min(this.windowMs, Math.max(60000, tNow - pts[0][0])) : this.windowMs;
    const t0 = tNow - span;
    let max = 0;
    for (const p of pts) for (let i = 1; i < p.length; i++) if (p[i] !== null && p[i] > max) max = p[i];
    max = niceCeil(max);
    if (this.spec.integer && max < 2) max = 2;
    const muted = cssVar('--muted');
    const grid = cssVar('--grid');
    ctx.font = `${11 * dpr}px system-ui, sans-serif`;
    const labels = [0, 1, 2].map((k) => this.spec.fmt((max * k) / 2));
    const padL = Math.ceil(Math.max(...labels.map((l) => ctx.measureText(l).width)) + 12 * dpr);
    const padR = 10 * dpr;
    const padT = 8 * dpr;
    const padB = 20 * dpr;
    const pw = W - padL - padR;
    const ph = H - padT - padB;
    ctx.fillStyle = muted;
    ctx.strokeStyle = grid;
    ctx.lineWidth = 1;
    ctx.textAlign = 'right';
    ctx.textBaseline = 'middle';
    for (let k = 0; k <= 2; k++) {
      const y = padT + ph - (ph * k) / 2;
      ctx.beginPath();
      ctx.moveTo(padL, Math.round(y) + 0.5);
      ctx.lineTo(padL + pw, Math.round(y) + 0.5);
      ctx.stroke();
      ctx.fillText(labels[k], padL - 6 * dpr, y);
    }
    ctx.textAlign = 'left';
    ctx.textBaseline = 'top';
    const ago = span >= 120000 ? `−${Math.round(span / 60000)} min` : `−${Math.round(span / 1000)} s`;
    ctx.fillText(ago, padL, padT + ph + 5 * dpr);
    ctx.textAlign = 'right';
    ctx.fillText('now', padL + pw, padT + ph + 5 * dpr);
    const X = (t) => padL + ((t - t0) / span) * pw;
    const Y = (v) => padT + ph - (max ? (v / max) * ph : 0);
    this.spec.series.forEach((s, i) => {
      const color = cssVar(s.color);
      ctx.strokeStyle = color;
      ctx.lineWidth = 2 * dpr;
      ctx.lineJoin = 'round';
      ctx.beginPath();
      let pen = false;
      let first = null;
      let last = null;
      for (const p of pts) {
        const v = p[i + 1];
        if (p[0] < t0 || v === null || v === undefined) {
          pen = false;
          continue;
        }
        const x = X(p[0]);
        const y = Y(v);
        if (pen) ctx.lineTo(x, y);
        else ctx.moveTo(x, y);
        pen = true;
        if (!first) first = [x, y];
        last = [x, y];
      }
      ctx.stroke();
      if (i === 0 && first && last) {
        // A light area under the first series.
        ctx.lineTo(last[0], padT + ph);
        ctx.lineTo(first[0], padT + ph);
        ctx.closePath();
        ctx.globalAlpha = 0.12;
        ctx.fillStyle = color;
        ctx.fill();
        ctx.globalAlpha = 1;
      }
    });
  }
}

function niceCeil(x) {
  if (!(x > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(x));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= x) return m * p;
  return 10 * p;
}

/**
 * Turns successive cumulative counter samples into rates per second.
 * `rate(t, {a: 10, b: 3})` → `{a: …/s, b: …/s}` (null on the first call or
 * after a counter went backwards, i.e. another node or a restart).
 */
export class Rates {
  constructor() {
    this.prev = null;
  }
  reset() {
    this.prev = null;
  }
  rate(t, counters) {
    const prev = this.prev;
    this.prev = { t, counters };
    const out = {};
    for (const k of Object.keys(counters)) out[k] = null;
    if (!prev || t <= prev.t) return out;
    const dt = (t - prev.t) / 1000;
    for (const [k, v] of Object.entries(counters)) {
      const p = prev.counters[k];
      if (typeof v === 'number' && typeof p === 'number' && v >= p) out[k] = (v - p) / dt;
    }
    return out;
  }
}
