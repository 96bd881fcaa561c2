// The node's REST API (the same routes as curl uses; docs/security.md).
// The bearer token lives in this tab's sessionStorage only and goes out as
// an Authorization header: the gateway takes no cookies, so another site
// cannot make the browser send it. Streams (GET /v1/mesh/watch,
// /v1/work/watch, /v1/work/{id}/results) are read with fetch, because
// EventSource cannot send headers: one JSON object per line,
// {"result": ...} or, for an error after the stream began, {"error": ...}.

const KEY = 'receptor.token';

// memo keeps the token when sessionStorage is disabled.
let memo = '';

let unauthorized = () => {};

/** onUnauthorized registers what to do when the node refuses the token. */
export function onUnauthorized(fn) { unauthorized = fn; }

export function token() {
  try { return sessionStorage.getItem(KEY) || ''; } catch { return ''; }
}

export function setToken(t) {
  try {
    if (t) sessionStorage.setItem(KEY, t); else sessionStorage.removeItem(KEY);
  } catch { /* storage disabled: the token lives until reload */ }
  memo = t;
}

function bearer() { return token() || memo; }

/** ApiError is a refusal or failure the node answered with (google.rpc.Status). */
export class ApiError extends Error {
  constructor(status, message, code) {
    super(message);
    this.status = status; // HTTP status, 0 for a network failure
    this.code = code;     // gRPC code number, when the node sent one
  }
}

function headers(extra) {
  const h = { Accept: 'application/json', ...extra };
  const t = bearer();
  if (t) h.Authorization = 'Bearer ' + t;
  return h;
}

async function failure(r) {
  let msg = r.statusText || 'request failed';
  let code;
  try {
    const body = await r.json();
    if (body && body.message) msg = body.message;
    if (body && body.code !== undefined) code = body.code;
  } catch { /* not JSON */ }
  if (r.status === 401) unauthorized(msg);
  return new ApiError(r.status, msg, code);
}

// GET_ATTEMPTS is how many times call sends a GET that gets no answer at
// all, RETRY_MS the pause before the second (doubled before the third).
const GET_ATTEMPTS = 3;
const RETRY_MS = 250;

/** pause resolves after ms, or rejects with an AbortError when signal aborts first. */
function pause(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal && signal.aborted) { reject(new DOMException('aborted', 'AbortError')); return; }
    const t = setTimeout(resolve, ms);
    if (signal) {
      signal.addEventListener('abort', () => {
        clearTimeout(t);
        reject(new DOMException('aborted', 'AbortError'));
      }, { once: true });
    }
  });
}

/**
 * call sends one request and returns the decoded JSON answer. body, when
 * given, is sent as JSON (the gateway refuses other content types). A GET
 * that gets no answer is sent up to GET_ATTEMPTS times; other methods once.
 */
export async function call(method, path, body, signal) {
  const init = { method, headers: headers(), cache: 'no-store', credentials: 'omit', signal };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let r;
  for (let attempt = 1; ; attempt++) {
    try {
      r = await fetch(path, init);
      break;
    } catch (e) {
      if (e.name === 'AbortError') throw e;
      // A GET changes nothing, so one that never got an answer is sent
      // again: browsers fail requests in flight when the machine's network
      // changes (ERR_NETWORK_CHANGED), which says nothing about the node.
      if (method !== 'GET' || attempt >= GET_ATTEMPTS) {
        throw new ApiError(0, 'the node did not answer: ' + e.message);
      }
      await pause(RETRY_MS * attempt, signal);
    }
  }
  if (!r.ok) throw await failure(r);
  const text = await r.text();
  return text ? JSON.parse(text) : {};
}

/**
 * stream reads a streaming route, calling onResult with each message's
 * "result" in order. It resolves when the node ends the stream and rejects
 * with an ApiError when the node refuses it or ends it with an error;
 * aborting signal stops it (an AbortError).
 */
export async function stream(path, onResult, signal) {
  let r;
  try {
    r = await fetch(path, { headers: headers(), cache: 'no-store', credentials: 'omit', signal });
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, 'the node did not answer: ' + e.message);
  }
  if (!r.ok) throw await failure(r);
  const reader = r.body.getReader();
  const dec = new TextDecoder();
  let buf = '';
  const line = (l) => {
    if (!l.trim()) return;
    const m = JSON.parse(l);
    if (m.error) throw new ApiError(200, m.error.message || 'stream failed', m.error.code);
    if (m.result !== undefined) onResult(m.result);
  };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += dec.decode(value, { stream: true });
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const l = buf.slice(0, i);
      buf = buf.slice(i + 1);
      line(l);
    }
  }
  line(buf + dec.decode());
}

/** base64 to bytes (results chunks carry bytes as base64 in JSON). */
export function b64bytes(s) {
  const bin = atob(s || '');
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}
