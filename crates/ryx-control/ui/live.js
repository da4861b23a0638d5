// A Server-Sent Events stream that reconnects by itself.
//
// EventSource retries on its own only in some cases (not after an HTTP
// error such as 502 from a proxy whose node just died), so this wrapper
// closes and reopens it with a backoff, and also when the stream goes
// quiet: nodes send a `sample` every second, so five silent seconds mean
// the node (or the path to it) is gone.
import { token } from './api.js';

export class LiveStream {
  /**
   * @param {string} url the event stream
   * @param {Record<string, (data: any, raw: string) => void>} handlers by event name
   * @param {{watchdogMs?: number, onState?: (state: string, info: object) => void}} opts
   */
  constructor(url, handlers, opts = {}) {
    this.url = url;
    this.handlers = handlers;
    this.watchdogMs = opts.watchdogMs || 5000;
    this.onState = opts.onState || (() => {});
    this.es = null;
    this.state = 'idle';
    this.retryMs = 500;
    this.timer = 0;
    this.lastMessage = 0;
    this.reconnects = 0;
    this.bytes = 0; // payload characters received (≈ bytes; the stream is ASCII JSON)
    this.openedAt = 0;
    this.watchdog = 0;
  }

  start() {
    if (this.es || this.timer) return;
    this.open();
    this.watchdog = setInterval(() => {
      if (this.state === 'live' && performance.now() - this.lastMessage > this.watchdogMs) {
        this.fail('no data for ' + Math.round(this.watchdogMs / 1000) + ' s');
      }
    }, 1000);
  }

  stop() {
    clearInterval(this.watchdog);
    clearTimeout(this.timer);
    this.watchdog = 0;
    this.timer = 0;
    if (this.es) this.es.close();
    this.es = null;
    this.setState('idle');
  }

  setState(s, info = {}) {
    this.state = s;
    this.onState(s, info);
  }

  open() {
    this.timer = 0;
    this.setState(this.reconnects ? 'reconnecting' : 'connecting');
    // EventSource cannot send headers: with --protect-reads the token
    // goes in the query string (the node accepts it there for GETs).
    const t = token();
    const url = t ? `${this.url}${this.url.includes('?') ? '&' : '?'}access_token=${encodeURIComponent(t)}` : this.url;
    const es = new EventSource(url);
    this.es = es;
    this.openedAt = performance.now();
    this.lastMessage = performance.now();
    for (const [name, fn] of Object.entries(this.handlers)) {
      es.addEventListener(name, (ev) => {
        this.lastMessage = performance.now();
        this.bytes += ev.data.length + name.length + 15; // "event: …\ndata: …\n\n"
        if (this.state !== 'live') {
          this.retryMs = 500;
          this.setState('live');
        }
        let data;
        try {
          data = JSON.parse(ev.data);
        } catch {
          data = ev.data;
        }
        try {
          fn(data, ev.data);
        } catch (e) {
          console.error(`handler for ${name} failed`, e);
        }
      });
    }
    es.onerror = () => {
      // Do not let EventSource retry on its own: we decide when.
      this.fail('connection lost');
    };
  }

  fail(why) {
    if (this.es) this.es.close();
    this.es = null;
    if (this.timer) return;
    this.reconnects++;
    this.setState('retrying', { why, inMs: this.retryMs });
    this.timer = setTimeout(() => this.open(), this.retryMs);
    this.retryMs = Math.min(this.retryMs * 2, 5000);
  }
}
