// Small DOM and formatting helpers shared by every view.

/** `document.getElementById`, throwing when the page is not what we expect. */
export function $(id) {
  const e = document.getElementById(id);
  if (!e) throw new Error(`missing element #${id}`);
  return e;
}

/**
 * Creates an element: `el('td', {class: 'num', 'data-x': 1}, 'text', child)`.
 * Attributes whose value is null/undefined/false are skipped; `true` sets an
 * empty attribute. `on*` keys with a function add an event listener.
 */
export function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') e.addEventListener(k.slice(2), v);
    else if (k === 'text') e.textContent = v;
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

/** Replaces an element's children. */
export function fill(parent, ...children) {
  parent.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
}

/** Sets text only when it changed (avoids needless layout and screen-reader chatter). */
export function setText(e, text) {
  const t = String(text);
  if (e.textContent !== t) e.textContent = t;
}

/** Sets an attribute only when it changed. */
export function setAttr(e, name, value) {
  const v = String(value);
  if (e.getAttribute(name) !== v) e.setAttribute(name, v);
}

export const shortId = (id) => (id ? String(id).slice(0, 8) : '–');

const nf = new Intl.NumberFormat('en', { maximumFractionDigits: 1 });
const nf0 = new Intl.NumberFormat('en', { maximumFractionDigits: 0 });

export function fmtNum(x, digits) {
  if (x === null || x === undefined || Number.isNaN(x)) return '–';
  if (digits === 0) return nf0.format(x);
  if (Math.abs(x) >= 100) return nf0.format(x);
  return nf.format(x);
}

export function fmtBytes(b) {
  if (b === null || b === undefined || Number.isNaN(b)) return '–';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let x = b;
  while (Math.abs(x) >= 1024 && i < u.length - 1) {
    x /= 1024;
    i++;
  }
  return `${i === 0 ? nf0.format(x) : nf.format(x)} ${u[i]}`;
}

export const fmtRate = (x) => `${fmtNum(x)}/s`;
export const fmtByteRate = (x) => `${fmtBytes(x)}/s`;

export function fmtDuration(ms) {
  if (ms === null || ms === undefined) return '–';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${nf.format(s)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${Math.round(s % 60)} s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h} h ${m % 60} min`;
  return `${Math.floor(h / 24)} d ${h % 24} h`;
}

export function fmtTime(unixMs) {
  const d = new Date(unixMs);
  return d.toLocaleTimeString('en-GB', { hour12: false });
}

export const clamp = (x, lo, hi) => Math.max(lo, Math.min(hi, x));

let announceTimer = 0;
/** Says something to screen readers (polite live region), without spamming. */
export function announce(msg) {
  const a = document.getElementById('announcer');
  if (!a) return;
  clearTimeout(announceTimer);
  announceTimer = setTimeout(() => {
    a.textContent = msg;
  }, 100);
}

/** The CSS custom property `name` of the document, e.g. `--ok`. */
export function cssVar(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

/** Runs `fn` at most once per `ms`, trailing call included. */
export function throttle(fn, ms) {
  let last = 0;
  let timer = 0;
  return (...args) => {
    const now = performance.now();
    const wait = last + ms - now;
    if (wait <= 0) {
      last = now;
      fn(...args);
    } else if (!timer) {
      timer = setTimeout(() => {
        timer = 0;
        last = performance.now();
        fn(...args);
      }, wait);
    }
  };
}
