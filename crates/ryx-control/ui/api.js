// The node API, at the page's own origin (a node's /ui, or ryx-control).

/** An API error: HTTP status, the node's error code and message. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

const TOKEN_KEY = 'ryx-api-token';

/** The cluster's API token this tab was given, if any. */
export function token() {
  try {
    return sessionStorage.getItem(TOKEN_KEY) || '';
  } catch {
    return '';
  }
}

/**
 * After a `401 unauthorized` (a node run with an API token): asks the
 * user for the token once, keeps it for this tab. Returns whether to retry.
 */
function askToken() {
  const t = window.prompt('This cluster needs its API token for that (Authorization: Bearer …). Token:');
  if (!t || !t.trim()) return false;
  try {
    sessionStorage.setItem(TOKEN_KEY, t.trim());
  } catch {
    return false;
  }
  return true;
}

/**
 * Calls the API. `json` is sent as a JSON body; JSON answers are parsed.
 * Errors (`{"error":{"code","message"}}`, network failures, time-outs)
 * are thrown as `ApiError`.
 */
export async function api(path, opts = {}) {
  try {
    return await call(path, opts);
  } catch (e) {
    if (e.status === 401 && e.code === 'unauthorized' && askToken()) return call(path, opts);
    throw e;
  }
}

async function call(path, { method = 'GET', json, body, timeout = 15000 } = {}) {
  const init = { method, headers: {}, cache: 'no-store' };
  if (token()) init.headers.authorization = `Bearer ${token()}`;
  if (json !== undefined) {
    init.body = JSON.stringify(json);
    init.headers['content-type'] = 'application/json';
  } else if (body !== undefined) {
    init.body = body;
  }
  if (timeout && typeof AbortSignal.timeout === 'function') init.signal = AbortSignal.timeout(timeout);
  let r;
  try {
    r = await fetch(path, init);
  } catch (e) {
    const msg = e && e.name === 'TimeoutError' ? `no answer within ${timeout / 1000} s` : 'network error';
    throw new ApiError(0, 'network', msg);
  }
  const ct = r.headers.get('content-type') || '';
  const data = ct.includes('json') ? await r.json().catch(() => null) : await r.text();
  if (!r.ok) {
    const err = data && data.error;
    throw new ApiError(r.status, (err && err.code) || `http_${r.status}`, (err && err.message) || `HTTP ${r.status}`);
  }
  return data;
}

/** The path that reaches node `http` (its HTTP address) through the server. */
export function nodePath(http, path) {
  return `/node/${encodeURIComponent(http).replace(/%3A/gi, ':')}${path}`;
}

/**
 * Whether the server offers `/node/{addr}/...`. Unknown until the first
 * call; a `404 not_found` from that route means it is not there (a node
 * that predates it), and views fall back to what the connected node knows.
 */
export const perNode = { available: null };

/** GETs `path` from node `http` through the per-node route. */
export async function nodeApi(http, path, opts) {
  try {
    const r = await api(nodePath(http, path), opts);
    perNode.available = true;
    return r;
  } catch (e) {
    if (e.status === 404 && e.code === 'not_found' && perNode.available !== true) {
      // The route itself is missing (not the resource): remember it.
      const probe = await fetch(nodePath(http, '/healthz'), { cache: 'no-store' }).catch(() => null);
      if (probe && probe.status === 404) perNode.available = false;
    }
    throw e;
  }
}

/** PUTs a file (or Blob) to `/v1/blobs`, reporting upload progress (0..1). */
export async function uploadBlob(file, onProgress) {
  try {
    return await put(file, onProgress);
  } catch (e) {
    if (e.status === 401 && e.code === 'unauthorized' && askToken()) return put(file, onProgress);
    throw e;
  }
}

function put(file, onProgress) {
  return new Promise((resolve, reject) => {
    const x = new XMLHttpRequest();
    x.open('PUT', '/v1/blobs');
    if (token()) x.setRequestHeader('authorization', `Bearer ${token()}`);
    x.responseType = 'json';
    x.upload.onprogress = (e) => {
      if (e.lengthComputable && onProgress) onProgress(e.loaded / e.total);
    };
    x.onload = () => {
      if (x.status >= 200 && x.status < 300) resolve(x.response);
      else {
        const err = x.response && x.response.error;
        reject(new ApiError(x.status, (err && err.code) || `http_${x.status}`, (err && err.message) || `HTTP ${x.status}`));
      }
    };
    x.onerror = () => reject(new ApiError(0, 'network', 'upload failed: network error'));
    x.send(file);
  });
}
