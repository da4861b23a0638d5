// Inject: submit a job (upload a file, the node's built-in corpus, a
// blob it holds, or a dataset the nodes hold) and inject info items.

import { $, el, fill, fmtBytes, fmtNum, shortId, announce } from './util.js';
import { api, uploadBlob } from './api.js';

export class InjectView {
  constructor(app) {
    this.app = app;
    this.form = $('job-form');
    this.info = $('info-form');
    this.form.addEventListener('change', () => this.sync());
    this.form.addEventListener('submit', (e) => {
      e.preventDefault();
      this.submitJob();
    });
    this.info.addEventListener('submit', (e) => {
      e.preventDefault();
      this.submitInfo(false);
    });
    this.searchForm = $('search-form');
    this.searchForm.addEventListener('submit', (e) => {
      e.preventDefault();
      this.search();
    });
    $('info-trace').addEventListener('click', () => {
      if (this.info.reportValidity()) this.submitInfo(true);
    });
    this.sync();
  }

  show() {
    this.refreshBlobs();
    this.refreshDatasets();
    this.refreshInfo();
  }

  sync() {
    const f = this.form.elements;
    const kind = f.kind.value;
    const source = f.source.value;
    for (const d of this.form.querySelectorAll('.params')) d.hidden = d.dataset.kind !== kind;
    for (const d of this.form.querySelectorAll('.sub[data-source]')) {
      const on = d.dataset.source === source;
      d.hidden = !on;
    }
    f.pattern.required = kind === 'grep';
  }

  status(id, text, cls) {
    const s = $(id);
    s.className = `status ${cls || ''}`;
    s.textContent = text;
  }

  params(kind) {
    const f = this.form.elements;
    const num = (x) => (x.value === '' ? undefined : Number(x.value));
    if (kind === 'word-count') return { top: num(f.top) };
    if (kind === 'grep') return { pattern: f.pattern.value, case_insensitive: f.case_insensitive.checked, max_samples: num(f.max_samples) };
    const p = { alert_samples: num(f.alert_samples) };
    if (f.preset.value) p.preset = f.preset.value;
    return p;
  }

  async input() {
    const f = this.form.elements;
    const source = f.source.value;
    if (source === 'file') {
      const file = f.file.files && f.file.files[0];
      if (!file) throw new Error('choose a file to upload');
      const prog = $('upload-progress');
      prog.hidden = false;
      prog.value = 0;
      this.status('job-form-status', `Uploading ${file.name} (${fmtBytes(file.size)})…`);
      try {
        const r = await uploadBlob(file, (x) => (prog.value = x));
        this.status('job-form-status', `Uploaded ${file.name}: ${r.chunks} chunk${r.chunks === 1 ? '' : 's'}, blob ${shortId(r.hash)}.`);
        return r.hash;
      } finally {
        prog.hidden = true;
      }
    }
    if (source === 'corpus') {
      const size = f.corpus_size.value;
      this.status('job-form-status', `Asking the node to generate ${fmtBytes(Number(size))} of sample text…`);
      try {
        const seed = Math.max(0, Math.floor(Number(f.corpus_seed.value) || 0));
        const r = await api(`/v1/blobs/sample?size=${size}&seed=${seed}`, { method: 'POST', timeout: 120000 });
        return r.hash;
      } catch (e) {
        if (e.status === 404) throw new Error('this node does not offer a built-in corpus (POST /v1/blobs/sample); upload a file instead');
        throw e;
      }
    }
    if (!f.blob.value) throw new Error('choose a blob (upload something first)');
    return f.blob.value;
  }

  async submitJob() {
    const f = this.form.elements;
    if (!this.form.reportValidity()) return;
    const btn = $('job-submit');
    btn.disabled = true;
    try {
      const kind = f.kind.value;
      const body = { kind, params: this.params(kind), redundancy: Number(f.redundancy.value) || 2 };
      if (f.source.value === 'dataset') {
        if (!f.dataset.value) throw new Error('choose a dataset (no node has announced one)');
        body.dataset = f.dataset.value;
      } else {
        body.inputs = [await this.input()];
      }
      const r = await api('/v1/jobs', { method: 'POST', json: body });
      this.status('job-form-status', `Job ${shortId(r.job_id)} submitted.`, 'ok');
      announce(`Job ${shortId(r.job_id)} submitted`);
      this.app.jobs.track(r.job_id);
      this.refreshBlobs();
      location.hash = `#jobs/${r.job_id}`;
    } catch (e) {
      this.status('job-form-status', `Not submitted: ${e.message}`, 'error');
    } finally {
      btn.disabled = false;
    }
  }

  /** GET /v1/search: the hits, and which nodes answered (the two jobs' workers). */
  async search() {
    const f = this.searchForm.elements;
    if (!this.searchForm.reportValidity()) return;
    if (!f.dataset.value) {
      this.status('search-status', 'Choose a dataset (no node has announced one).', 'error');
      return;
    }
    const btn = $('search-submit');
    btn.disabled = true;
    this.status('search-status', 'Searching…');
    try {
      const k = Math.max(1, Math.min(1000, Number(f.k.value) || 10));
      const q = encodeURIComponent(f.q.value);
      const r = await api(`/v1/search?dataset=${encodeURIComponent(f.dataset.value)}&q=${q}&k=${k}`, { timeout: 60000 });
      const hits = r.hits || [];
      fill(
        document.querySelector('#search-hits tbody'),
        hits.map((h, i) => {
          const at = (r.hit_nodes || [])[i] || {};
          const short = (id) => String(id).slice(0, 8);
          const by = (at.answered_by || []).map(short).join(', ');
          return el(
            'tr',
            {},
            el('td', { class: 'num' }, i + 1),
            el('td', { class: 'mono' }, h.id),
            el('td', { class: 'num' }, Number(h.score).toFixed(4)),
            el('td', { class: 'mono' }, at.lives_on ? short(at.lives_on) : '—'),
            el('td', { class: 'mono' }, by || '—'),
          );
        }),
      );
      $('search-hits').hidden = hits.length === 0;
      let workers = '';
      if (r.path === 'wave' && r.wave) {
        workers = `, answered by ${r.wave.holders} holder${r.wave.holders === 1 ? '' : 's'} in a query wave over ${r.wave.nodes} node${r.wave.nodes === 1 ? '' : 's'}`;
      } else if (r.jobs && r.jobs.search) {
        try {
          const j = await api(`/v1/jobs/${r.jobs.search}`);
          workers = `, answered by ${j.stats.workers} node${j.stats.workers === 1 ? '' : 's'}`;
        } catch {
          /* the job view is a detail */
        }
      }
      const d = r.dataset || {};
      const cov = r.coverage || {};
      const copied = (cov.from_copies || []).length ? ` · ${cov.from_copies.length} dead holder(s) covered from copies` : '';
      const left =
        (r.unreachable || []).length
          ? ` · ${r.unreachable.length} holder(s) lost: covers ${(100 * (cov.share ?? 0)).toFixed(1)}% of the bytes`
          : copied;
      this.status(
        'search-status',
        `${fmtNum(r.matched)} of ${fmtNum(r.docs)} documents matched; ${hits.length} shown · dataset ${d.name} on ${d.nodes} node${d.nodes === 1 ? '' : 's'}${workers} · ${r.elapsed_ms} ms${left}`,
        'ok',
      );
      announce(`${hits.length} search results`);
    } catch (e) {
      $('search-hits').hidden = true;
      this.status('search-status', `Search failed: ${e.message}`, 'error');
    } finally {
      btn.disabled = false;
    }
  }

  async submitInfo(trace) {
    const f = this.info.elements;
    let value;
    try {
      value = JSON.parse(f.value.value);
    } catch {
      value = f.value.value;
    }
    const energy = f.energy.value === '' ? undefined : Number(f.energy.value);
    try {
      const r = await api('/v1/info', { method: 'POST', json: { key: f.key.value, value, energy } });
      this.status('info-form-status', `Injected ${r.key} version ${r.version} from ${shortId(r.origin)}.`, 'ok');
      this.refreshInfo();
      if (trace) {
        location.hash = '#energy';
        this.app.energy.startTrace(r.key, { version: r.version, origin: r.origin, energy });
      }
    } catch (e) {
      this.status('info-form-status', `Not injected: ${e.message}`, 'error');
    }
  }

  async refreshBlobs() {
    try {
      const r = await api('/v1/blobs');
      const sel = $('job-blob');
      const cur = sel.value;
      const inputs = (r.blobs || []).filter((b) => b.kind === 'chunk' || b.kind === 'manifest');
      fill(sel, inputs.length ? inputs.map((b) => el('option', { value: b.hash, selected: b.hash === cur }, `${shortId(b.hash)} · ${fmtBytes(b.size)} · ${b.kind}`)) : el('option', { value: '' }, '(none held)'));
    } catch {
      /* the list is a convenience */
    }
  }

  async refreshDatasets() {
    try {
      const r = await api('/v1/datasets');
      const ds = r.datasets || [];
      for (const id of ['job-dataset', 'search-dataset']) {
        const sel = $(id);
        const cur = sel.value;
        fill(sel, ds.length ? ds.map((d) => el('option', { value: d.name, selected: d.name === cur }, `${d.name} · ${fmtBytes(d.bytes)} on ${d.holders.length} node${d.holders.length === 1 ? '' : 's'}`)) : el('option', { value: '' }, '(none announced)'));
      }
    } catch {
      /* the list is a convenience */
    }
  }

  async refreshInfo() {
    try {
      const r = await api('/v1/info');
      const items = (r.items || []).sort((a, b) => (a.key < b.key ? -1 : 1)).slice(0, 200);
      fill(
        document.querySelector('#info-table tbody'),
        items.map((it) =>
          el('tr', {}, el('td', { class: 'mono' }, it.key), el('td', { class: 'mono' }, truncate(JSON.stringify(it.value), 60)), el('td', { class: 'num' }, fmtNum(it.energy)), el('td', { class: 'num' }, it.hops), el('td', { class: 'mono' }, shortId(it.origin))),
        ),
      );
    } catch {
      /* shown empty */
    }
  }
}

function truncate(s, n) {
  return s.length > n ? `${s.slice(0, n - 1)}…` : s;
}
