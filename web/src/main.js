// The web view of one node: sign-in with a bearer token, the topology graph
// and the work table (#/), and a unit's page (#/work/ID). Live data comes
// from the node's watch streams; nothing is polled.

import { call, stream, setToken, token, onUnauthorized, ApiError } from './api.js';
import { MeshModel, durSeconds, HIDE_AFTER_MS } from './mesh.js';
import { Graph } from './graph.js';
import { WorkModel, WorkTable, UnitPage } from './work.js';
import { bytes, rate, seconds, age } from './format.js';

const $ = (id) => document.getElementById(id);

const mesh = new MeshModel();
const work = new WorkModel();
let access = {};
let graph = null;
let table = null;
let unitPage = null;
let session = null; // AbortController of the running watches
let selected = '';

function setLive(text, bad) {
  const el = $('live');
  el.textContent = text;
  el.classList.toggle('bad', !!bad);
}

// ---- sign-in ----

function showLogin(msg) {
  stopWatches();
  for (const v of ['view-home', 'view-unit']) $(v).hidden = true;
  $('login').hidden = false;
  $('signout').hidden = true;
  $('who').textContent = '';
  $('login-error').textContent = msg || '';
  setLive('');
  $('token').focus();
}

onUnauthorized((msg) => {
  setToken('');
  showLogin(`The node refused the token: ${msg}`);
});

$('login-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const t = $('token').value.trim();
  if (!t) return;
  setToken(t);
  try {
    await call('GET', '/v1/status');
  } catch (err) {
    setToken('');
    if (err instanceof ApiError && err.status === 403) {
      showLogin(`This token may not read the node: ${err.message}`);
    } else if (!(err instanceof ApiError && err.status === 401)) {
      showLogin(err.message);
    }
    return;
  }
  $('token').value = '';
  start();
});

$('signout').addEventListener('click', () => { setToken(''); showLogin('Signed out.'); });

// ---- watches ----

function stopWatches() {
  if (session) session.abort();
  session = null;
}

/** keep runs a watch until the session ends, starting it again after a failure. */
async function keep(name, run, signal) {
  let delay = 500;
  while (!signal.aborted) {
    const started = Date.now();
    try {
      await run(signal);
    } catch (e) {
      if (signal.aborted || e.name === 'AbortError') return;
      if (e instanceof ApiError && e.status === 401) return;
      setLive(`${name}: ${e.message}; retrying`, true);
    }
    if (signal.aborted) return;
    if (Date.now() - started > 30000) delay = 500;
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 10000);
  }
}

// A burst of topology events asks for one status (edges between other
// nodes are only in the status); refreshes are at most one per 500 ms.
let refreshTimer = 0;
let refreshing = false;
function refreshSoon(signal) {
  if (refreshTimer || signal.aborted) return;
  refreshTimer = setTimeout(async () => {
    if (refreshing) { refreshTimer = 0; refreshSoon(signal); return; }
    refreshing = true;
    try {
      const st = await call('GET', '/v1/status', undefined, signal);
      mesh.setStatus(st, [...mesh.health.values()]);
      redraw();
    } catch { /* the watch reports trouble */ }
    refreshing = false;
    refreshTimer = 0;
  }, 500);
}

async function watchMesh(signal) {
  let first = true;
  await stream('/v1/mesh/watch', (m) => {
    if (m.snapshot) {
      mesh.setStatus(m.snapshot.status || {}, m.snapshot.links || []);
      first = false;
      setLive('live');
      redraw();
      // The snapshot is the mesh's view; the status adds the host and work
      // agent (CPUs, memory, capacity) for the details panel.
      refreshSoon(signal);
      return;
    }
    if (first || !m.event) return;
    if (mesh.apply(m.event)) refreshSoon(signal);
    redraw();
  }, signal);
  throw new Error('mesh watch ended');
}

async function watchWork(signal) {
  let buffer = [];
  let inSnapshot = true;
  await stream('/v1/work/watch', (m) => {
    const kind = (m.kind || '').replace('UNIT_EVENT_KIND_', '');
    if (kind === 'SNAPSHOT') { buffer.push(m.status); return; }
    if (kind === 'SNAPSHOT_END') { work.reset(buffer.filter(Boolean)); buffer = []; inSnapshot = false; return; }
    if (inSnapshot) return;
    if (kind === 'RELEASED') work.remove(m.unitId);
    else if (m.status) work.set(m.status);
  }, signal);
  throw new Error('work watch ended');
}

// ---- drawing ----

// [ms since page load, nodes, links] of the first draws, for measurements.
const draws = [];
let redrawQueued = false;
function redraw() {
  if (redrawQueued) return;
  redrawQueued = true;
  requestAnimationFrame(() => {
    redrawQueued = false;
    const v = mesh.view($('show-gone').checked);
    graph.update(v);
    $('node-name').textContent = mesh.local ? `· ${mesh.local}` : '';
    const reach = v.nodes.filter((n) => n.reachable).length;
    $('mesh-count').textContent = `(${reach} reachable${v.nodes.length > reach ? `, ${v.nodes.length - reach} unreachable` : ''})`;
    $('gone-count').textContent = v.hidden ? `(${v.hidden} hidden)` : '';
    document.body.dataset.nodes = String(v.nodes.length);
    if (draws.length < 1000) draws.push([performance.now(), v.nodes.length, v.links.length]);
    document.body.dataset.links = String(v.links.length);
    if (selected) details(selected);
  });
}

// Nodes that became unreachable drop out of the view HIDE_AFTER_MS later.
setInterval(() => { if (session && mesh.goneSince.size) redraw(); }, 1000);

function details(id) {
  selected = id;
  const body = $('details-body');
  const title = $('details-title');
  if (!id) { title.textContent = 'Node'; body.replaceChildren(); return; }
  title.textContent = id;
  const frag = document.createDocumentFragment();
  const dl = document.createElement('dl');
  dl.className = 'meta';
  const row = (k, v) => {
    const dt = document.createElement('dt');
    dt.textContent = k;
    const dd = document.createElement('dd');
    if (v instanceof Node) dd.append(v); else dd.textContent = v;
    dl.append(dt, dd);
  };
  const local = id === mesh.local;
  const reachable = mesh.isReachable(id);
  row('State', local ? 'this node' : reachable ? 'reachable' : 'unreachable');
  if (!local) row('Next hop', mesh.routes.get(id) || (reachable ? '' : 'no route'));
  if (local && mesh.status) {
    const st = mesh.status;
    row('Version', st.version || 'unknown');
    row('CPUs', String(st.systemCpuCount ?? ''));
    row('Memory', bytes(Number(st.systemMemoryMib || 0) * 1048576));
    const w = st.work || {};
    if (w.attached) {
      const c = w.capacity || {};
      row('Work agent', `${w.version || 'attached'}; ${c.cpuCount ?? '?'} CPUs, ${bytes(Number(c.memoryMib || 0) * 1048576)}, ${c.runningUnits ?? 0} running`);
    } else {
      row('Work agent', 'none attached');
    }
  }
  const nb = mesh.topo.get(id);
  const neigh = [];
  if (local) {
    for (const [peer, h] of mesh.health) {
      const r = mesh.rates.get(peer);
      const rtt = durSeconds(h.rtt);
      const bits = [`cost ${h.cost ?? ''}`, h.up === false ? 'down' : 'up'];
      if (rtt !== undefined) bits.push('RTT ' + seconds(rtt));
      if (r && r.inPerS !== undefined) bits.push(`${rate(r.inPerS)} in, ${rate(r.outPerS)} out`);
      if (h.backendKind) bits.push(h.backendKind);
      neigh.push(`${peer}: ${bits.join(', ')}`);
    }
  } else if (nb) {
    for (const [peer, cost] of nb) neigh.push(`${peer}: cost ${cost}`);
  }
  row('Links', list(neigh.sort(), 'none known'));
  const ads = mesh.adsOf(id);
  row('Services', list(ads.map((a) => {
    const tags = Object.entries(a.tags || {}).map(([k, v]) => `${k}=${v}`).join(', ');
    return a.service + (tags ? ` (${tags})` : '');
  }), 'none advertised'));
  const wt = mesh.workTypesOf(id);
  row('Work types', list(wt.map((w) => w.workType + (w.secure ? ' (signed)' : '')), 'none'));
  if (!local) {
    const routed = [...mesh.routes].filter(([, hop]) => hop === id).map(([d]) => d).sort();
    if (routed.length) row('Routes through it', list(routed, ''));
  }
  frag.append(dl);
  body.replaceChildren(frag);
}

function list(items, none) {
  if (!items.length) return none;
  const ul = document.createElement('ul');
  for (const i of items) {
    const li = document.createElement('li');
    li.textContent = i;
    ul.append(li);
  }
  return ul;
}

function report(msg, bad) {
  setLive(msg, bad);
}

// ---- views ----

function route() {
  if (!token()) { showLogin(); return; }
  if (!session) { start(); return; }
  const m = location.hash.match(/^#\/work\/([^/]+)$/);
  $('login').hidden = true;
  if (m) {
    $('view-home').hidden = true;
    $('view-unit').hidden = false;
    unitPage.open(decodeURIComponent(m[1]));
    $('unit-title').focus?.();
  } else {
    unitPage.close();
    $('view-unit').hidden = true;
    $('view-home').hidden = false;
    if (location.hash === '#/work') $('work-title').scrollIntoView();
    redraw();
  }
  for (const [nav, on] of [['nav-mesh', !m && location.hash !== '#/work'], ['nav-work', !!m || location.hash === '#/work']]) {
    if (on) $(nav).setAttribute('aria-current', 'page'); else $(nav).removeAttribute('aria-current');
  }
}

async function start() {
  stopWatches();
  session = new AbortController();
  const signal = session.signal;
  $('login').hidden = true;
  $('signout').hidden = false;
  setLive('connecting…');
  try {
    const a = await call('GET', '/v1/access', undefined, signal);
    const allowed = new Set(a.allowedActions || []);
    access = { principal: a.principal, role: a.role, workCancel: allowed.has('work cancel'), workRelease: allowed.has('work release') };
    $('who').textContent = `${a.principal || ''} (${a.role || ''})`;
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return;
    access = {};
  }
  keep('mesh', watchMesh, signal);
  keep('work', watchWork, signal);
  route();
}

function init() {
  graph = new Graph($('graph'), { onSelect: (id) => { details(id); } });
  table = new WorkTable($('work-table'), $('work-empty'), $('work-count'), work, () => access, report);
  unitPage = new UnitPage($('view-unit'), work, () => access);
  $('zoom-in').addEventListener('click', () => graph.zoomBy(1.3));
  $('zoom-out').addEventListener('click', () => graph.zoomBy(1 / 1.3));
  $('zoom-fit').addEventListener('click', () => graph.fit());
  $('show-gone').addEventListener('change', redraw);
  window.addEventListener('hashchange', route);
  route();
}

init();

// For tests and the curious: the figures the page measured.
window.receptorView = { mesh, work, draws, HIDE_AFTER_MS, age };
