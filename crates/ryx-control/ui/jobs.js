// Jobs: what the connected node knows (its samples carry up to 50 job
// summaries every second), plus the jobs submitted from this page, which
// any node answers about (`GET /v1/jobs/{id}` asks nearby nodes).

import { $, el, fill, fmtBytes, fmtDuration, fmtNum, setAttr, setText, shortId, announce } from './util.js';
import { api } from './api.js';

const FINAL = new Set(['done', 'failed', 'cancelled']);

export class JobsView {
  constructor(app) {
    this.app = app;
    this.jobs = new Map(); // id → summary (as in /v1/jobs)
    this.details = new Map(); // id → full /v1/jobs/{id} (with result)
    this.tracked = new Set(); // submitted here: keep asking until final
    this.rows = new Map();
    this.selected = null;
    this.fetching = new Set();
    this.tbody = document.querySelector('#jobs-table tbody');
    this.tbody.addEventListener('click', (e) => {
      const b = e.target.closest('button[data-job]');
      if (b) location.hash = `#jobs/${b.dataset.job}`;
    });
    setInterval(() => this.pollTracked(), 2000);
    this.visible = false;
    setInterval(() => this.visible && !document.hidden && this.refreshDatasets(), 5000);
    $('datasets').addEventListener('click', (e) => {
      const b = e.target.closest('button[data-node]');
      if (b) app.openNode(b.dataset.node, b);
    });
  }

  /**
   * The datasets the connected node has heard announced (`GET
   * /v1/datasets`), each with the bytes every holder has of it.
   */
  async refreshDatasets() {
    let ds;
    try {
      ds = (await api('/v1/datasets')).datasets || [];
    } catch {
      return; /* an older node, or a hiccup: keep what is shown */
    }
    $('datasets-empty').hidden = ds.length > 0;
    fill(
      $('datasets'),
      ds.map((d) => {
        const max = Math.max(1, ...d.holders.map((h) => h.bytes));
        return el(
          'div',
          { class: 'dataset', 'data-dataset': d.name },
          el('h3', {}, el('span', { class: 'mono' }, d.name), ` · ${fmtBytes(d.bytes)} in ${fmtNum(d.files, 0)} files on ${d.holders.length} node${d.holders.length === 1 ? '' : 's'}`),
          el(
            'ul',
            { class: 'hbars', 'aria-label': `Bytes of ${d.name} per node` },
            d.holders.map((h) =>
              el(
                'li',
                { 'data-node': h.node },
                el('span', { class: 'w' }, el('button', { class: 'linkish mono', type: 'button', 'data-node': h.node, title: `node ${h.node} at ${h.http}` }, shortId(h.node))),
                el('span', { class: 'track', 'aria-hidden': 'true' }, el('span', { class: 'fillbar', style: `width:${(100 * h.bytes) / max}%;display:block` })),
                el('span', { class: 'c', title: `${fmtNum(h.chunks, 0)} sealed chunks in ${fmtNum(h.files, 0)} files` }, fmtBytes(h.bytes)),
              ),
            ),
          ),
        );
      }),
    );
  }

  /** Job ids homed on running jobs' nodes, for the graph badges. */
  homes() {
    const s = new Set();
    for (const j of this.jobs.values()) if (j.state === 'running') s.add(j.home);
    return s;
  }

  running() {
    let k = 0;
    for (const j of this.jobs.values()) if (j.state === 'running') k++;
    return k;
  }

  fromSample(jobs) {
    if (!Array.isArray(jobs)) return;
    let changed = false;
    for (const j of jobs) changed = this.upsert(normalize(j)) || changed;
    if (changed) this.render();
  }

  upsert(j) {
    const old = this.jobs.get(j.job_id);
    this.jobs.set(j.job_id, { ...old, ...j, seenAt: Date.now() });
    if (old && old.state !== j.state && FINAL.has(j.state)) {
      announce(`Job ${shortId(j.job_id)} ${j.state}`);
    }
    const changed = !old || old.state !== j.state || (old.progress && old.progress.units_done) !== j.progress.units_done || JSON.stringify(old.stats) !== JSON.stringify(j.stats);
    if (FINAL.has(j.state) && j.job_id === this.selected && !this.details.has(j.job_id)) this.fetchDetail(j.job_id);
    else if (changed && j.job_id === this.selected) this.renderDetail();
    return changed;
  }

  track(id) {
    this.tracked.add(id);
    if (!this.jobs.has(id)) {
      this.jobs.set(id, { job_id: id, kind: '…', state: 'running', progress: { units_total: 0, units_done: 0 }, stats: {}, seenAt: 0, created: Date.now() * 1000 });
    }
    this.render();
  }

  async pollTracked() {
    if (document.hidden) return;
    for (const id of this.tracked) {
      const j = this.jobs.get(id);
      if (j && FINAL.has(j.state) && this.details.has(id)) {
        this.tracked.delete(id);
        continue;
      }
      // The connected node's samples already cover jobs it lists.
      if (j && Date.now() - (j.seenAt || 0) < 3000 && !FINAL.has(j.state)) continue;
      if (this.fetching.has(id)) continue;
      this.fetchDetail(id);
    }
  }

  async fetchDetail(id) {
    if (this.fetching.has(id)) return;
    this.fetching.add(id);
    try {
      const d = await api(`/v1/jobs/${id}`, { timeout: 30000 });
      if (FINAL.has(d.state)) this.details.set(id, d);
      this.upsert(normalize(d));
      this.render();
      if (id === this.selected) this.renderDetail();
    } catch (e) {
      if (id === this.selected) this.renderDetail(e.message);
    } finally {
      this.fetching.delete(id);
    }
  }

  select(id) {
    this.selected = id;
    for (const [jid, tr] of this.rows) tr.classList.toggle('selected', jid === id);
    if (id && !this.details.has(id)) this.fetchDetail(id);
    this.renderDetail();
  }

  show(arg) {
    if (arg) this.select(arg);
    this.visible = true;
    this.refreshDatasets();
    this.render();
  }

  hide() {
    this.visible = false;
  }

  render() {
    const list = [...this.jobs.values()].sort((a, b) => (b.created || 0) - (a.created || 0) || (a.job_id < b.job_id ? -1 : 1));
    $('jobs-empty').hidden = list.length > 0;
    const badge = $('jobs-badge');
    const running = this.running();
    badge.hidden = running === 0;
    setText(badge, running);
    setText($('fact-jobs'), running);
    const keep = new Set(list.map((j) => j.job_id));
    for (const [id, tr] of this.rows) if (!keep.has(id)) (tr.remove(), this.rows.delete(id));
    let prev = null;
    for (const j of list) {
      let tr = this.rows.get(j.job_id);
      if (!tr) {
        tr = el('tr', { 'data-job-id': j.job_id });
        for (let i = 0; i < 9; i++) tr.append(el('td'));
        tr.children[0].append(el('button', { type: 'button', class: 'linkish', 'data-job': j.job_id }, shortId(j.job_id)));
        tr.children[3].append(el('div', { class: 'progress-cell' }, el('div', { class: 'bar', role: 'progressbar', 'aria-valuemin': 0 }, el('span')), el('small')));
        for (const i of [4, 5, 6, 7, 8]) tr.children[i].className = 'num';
        this.rows.set(j.job_id, tr);
      }
      const td = tr.children;
      const p = j.progress || {};
      const s = j.stats || {};
      setAttr(tr, 'data-state', j.state);
      tr.classList.toggle('selected', j.job_id === this.selected);
      setAttr(td[0].firstChild, 'aria-label', `Job ${j.job_id}, ${j.kind}, ${j.state}: show details`);
      setText(td[1], j.kind);
      if (td[2].dataset.state !== j.state) {
        td[2].dataset.state = j.state;
        fill(td[2], el('span', { class: `state ${j.state}` }, j.state));
      }
      const bar = td[3].querySelector('.bar');
      const frac = p.units_total ? p.units_done / p.units_total : FINAL.has(j.state) ? 1 : 0;
      bar.className = `bar ${j.state}`;
      bar.firstChild.style.width = `${Math.round(frac * 100)}%`;
      setAttr(bar, 'aria-valuemax', p.units_total || 0);
      setAttr(bar, 'aria-valuenow', p.units_done || 0);
      setAttr(bar, 'aria-label', `${p.units_done || 0} of ${p.units_total || 0} units`);
      setText(td[3].querySelector('small'), `${p.units_done ?? '–'}/${p.units_total ?? '–'} units`);
      setText(td[4], j.redundancy ?? '–');
      setText(td[5], s.workers ?? '–');
      setText(td[6], s.reissued ?? '–');
      setText(td[7], s.disagreements ?? '–');
      setText(td[8], s.elapsed_ms !== undefined ? fmtDuration(s.elapsed_ms) : '–');
      const want = prev ? prev.nextSibling : this.tbody.firstChild;
      if (want !== tr) this.tbody.insertBefore(tr, want);
      prev = tr;
    }
    if (this.app.view === 'energy' && this.app.energy) this.app.energy.renderWork();
  }

  renderDetail(error) {
    const host = $('job-detail');
    const id = this.selected;
    if (!id) return;
    const j = this.details.get(id) || this.jobs.get(id);
    const title = el('h2', { id: 'job-detail-title' }, 'Job ', el('span', { class: 'mono' }, shortId(id)));
    if (!j) {
      fill(host, title, el('p', { class: error ? 'error-text' : 'empty' }, error || 'Loading…'));
      return;
    }
    const p = j.progress || {};
    const s = j.stats || {};
    const stat = (v, l, hint) => el('div', { class: 'stat', title: hint }, el('div', { class: 'v' }, v ?? '–'), el('div', { class: 'l' }, l));
    const parts = [
      title,
      el(
        'dl',
        { class: 'kv' },
        el('dt', {}, 'Kind'),
        el('dd', {}, j.kind),
        el('dt', {}, 'State'),
        el('dd', {}, el('span', { class: `state ${j.state}`, id: 'job-detail-state', 'data-state': j.state }, j.state)),
        el('dt', {}, 'Id'),
        el('dd', { class: 'mono' }, id),
        el('dt', {}, 'Home'),
        el('dd', { class: 'mono' }, j.home ? `${shortId(j.home)} · ${j.home_http || ''}` : '–'),
        el('dt', {}, 'Input'),
        el(
          'dd',
          { id: 'job-detail-input' },
          j.dataset
            ? `dataset ${j.dataset.name}: ${fmtBytes(j.dataset.bytes)} on ${j.dataset.nodes} nodes, computed where it lies (snapshot ${shortId(j.dataset.snapshot)})`
            : 'uploaded blobs',
        ),
      ),
      el(
        'div',
        { class: 'stats' },
        stat(`${p.units_done ?? '–'}/${p.units_total ?? '–'}`, 'units done'),
        stat(p.bytes_total ? `${fmtBytes(p.bytes_done || 0)} / ${fmtBytes(p.bytes_total)}` : '–', 'input done'),
        stat(j.redundancy, 'redundancy', 'replicas per unit'),
        stat(s.workers, 'workers', 'nodes that returned results'),
        stat(s.results, 'results', 'partial results received'),
        stat(s.reissued, 're-executions', 'units issued again (a worker died or was slow)'),
        stat(s.extra_replicas, 'extra replicas', 'replicas added to settle a vote'),
        stat(s.disagreements, 'disagreements', 'units whose replicas returned different results'),
        stat(s.takeovers, 'takeovers', 'times an heir took over the job'),
        stat(s.elapsed_ms !== undefined ? fmtDuration(s.elapsed_ms) : '–', 'elapsed'),
      ),
    ];
    if (j.error) parts.push(el('p', { class: 'error-text' }, j.error));
    if (j.state === 'running') {
      parts.push(
        el('button', {
          class: 'btn danger',
          type: 'button',
          onclick: async (e) => {
            e.target.disabled = true;
            try {
              await api(`/v1/jobs/${id}`, { method: 'DELETE' });
              announce(`Job ${shortId(id)} cancelled`);
            } catch (err) {
              announce(`Cancel failed: ${err.message}`);
            }
            this.fetchDetail(id);
          },
        }, 'Cancel job'),
      );
    }
    const d = this.details.get(id);
    if (d && d.result) parts.push(el('div', { id: 'job-result', 'data-kind': d.kind }, resultView(d.kind, d.result)));
    else if (j.state === 'done') parts.push(el('p', { class: 'empty' }, error ? `Result not available: ${error}` : 'Fetching the result…'));
    if (d && d.result_digest) parts.push(el('p', { class: 'digest' }, `result digest ${d.result_digest}`));
    fill(host, parts);
  }
}

/** A job from a sample or /v1/jobs/{id}, in /v1/jobs's shape. */
function normalize(j) {
  const progress = j.progress || { units_total: j.units_total, units_done: j.units_done, bytes_total: j.bytes_total, bytes_done: j.bytes_done };
  const out = {
    job_id: j.job_id,
    kind: j.kind,
    state: j.state,
    progress,
    redundancy: j.redundancy,
    home: j.home,
    home_http: j.home_http,
    error: j.error,
    stats: j.stats || {},
    created: j.created,
    result_digest: j.result_digest,
    dataset: j.dataset,
  };
  for (const k of Object.keys(out)) if (out[k] === undefined) delete out[k];
  return out;
}

function bars(rows, label) {
  const max = Math.max(1, ...rows.map((r) => r[1]));
  return el(
    'ul',
    { class: 'hbars', 'aria-label': label },
    rows.map(([w, c]) =>
      el('li', {}, el('span', { class: 'w', title: w }, w), el('span', { class: 'track', 'aria-hidden': 'true' }, el('span', { class: 'fillbar', style: `width:${(100 * c) / max}%;display:block` })), el('span', { class: 'c' }, fmtNum(c, 0))),
    ),
  );
}

function resultView(kind, r) {
  const stat = (v, l) => el('div', { class: 'stat' }, el('div', { class: 'v' }, fmtNum(v, 0)), el('div', { class: 'l' }, l));
  if (kind === 'word-count') {
    return [
      el('h3', {}, 'Result'),
      el('div', { class: 'stats' }, stat(r.total_words, 'words'), stat(r.distinct_words, 'distinct words')),
      el('h3', {}, `Top ${(r.top || []).length} words`),
      bars(r.top || [], 'Most frequent words'),
    ];
  }
  if (kind === 'grep') {
    return [
      el('h3', {}, 'Result'),
      el('div', { class: 'stats' }, stat(r.lines, 'lines'), stat(r.matching_lines, 'matching lines')),
      el('h3', {}, `Sample matches (${(r.samples || []).length})`),
      el('pre', { class: 'samples' }, (r.samples || []).join('\n') || '(none)'),
    ];
  }
  if (kind === 'log-analysis') {
    const levels = Object.entries(r.levels || {}).sort((a, b) => b[1] - a[1]);
    const templates = [...(r.templates || [])].sort((a, b) => b.count - a.count);
    const alerts = r.alerts || { count: 0, samples: [] };
    return [
      el('h3', {}, 'Result'),
      el('div', { class: 'stats' }, stat(r.lines, 'lines'), stat(r.unparsed, 'unparsed'), stat(templates.length, 'templates'), stat(alerts.count, 'alerts')),
      levels.length ? [el('h3', {}, 'Levels'), bars(levels, 'Lines per level')] : null,
      el('h3', {}, `Templates (${templates.length})`),
      el(
        'div',
        { class: 'table-wrap' },
        el(
          'table',
          { class: 'data' },
          el('thead', {}, el('tr', {}, el('th', { scope: 'col', class: 'num' }, '#'), el('th', { scope: 'col' }, 'Template'), el('th', { scope: 'col', class: 'num' }, 'Count'))),
          el('tbody', {}, templates.slice(0, 50).map((t) => el('tr', {}, el('td', { class: 'num' }, t.id), el('td', { class: 'mono' }, t.template), el('td', { class: 'num' }, fmtNum(t.count, 0))))),
        ),
      ),
      templates.length > 50 ? el('p', { class: 'note' }, `${templates.length - 50} more templates not shown`) : null,
      el('h3', {}, `Alert samples (${(alerts.samples || []).length} of ${fmtNum(alerts.count, 0)})`),
      el('pre', { class: 'samples' }, (alerts.samples || []).join('\n') || '(none)'),
    ];
  }
  return el('pre', { class: 'samples' }, JSON.stringify(r, null, 2));
}
