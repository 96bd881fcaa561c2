// Work units: the table on the main view and a unit's own page. Units come
// from GET /v1/work/watch (every unit first, then each change); a unit's
// page streams GET /v1/work/{id}/results from the last byte it holds.

import { call, stream, b64bytes, ApiError } from './api.js';
import { age, bytes } from './format.js';

const stateName = (u) => u.stateName || (u.state || '').replace('UNIT_STATE_', '').toLowerCase();

/** WorkModel holds the units the node's watch reported. */
export class WorkModel {
  constructor() {
    this.units = new Map(); // id -> UnitStatus
    this.firstSeen = new Map(); // id -> ms, for units whose status carries no creation time
    this.listeners = new Set();
  }

  on(fn) { this.listeners.add(fn); return () => this.listeners.delete(fn); }

  emit(id) { for (const fn of this.listeners) fn(id); }

  /** reset replaces every unit (a fresh snapshot). */
  reset(list) {
    this.units = new Map(list.map((u) => [u.unitId, u]));
    for (const id of this.units.keys()) if (!this.firstSeen.has(id)) this.firstSeen.set(id, Date.now());
    this.emit('');
  }

  set(u) {
    if (!u || !u.unitId) return;
    this.units.set(u.unitId, u);
    if (!this.firstSeen.has(u.unitId)) this.firstSeen.set(u.unitId, Date.now());
    this.emit(u.unitId);
  }

  remove(id) {
    this.units.delete(id);
    this.emit(id);
  }

  /** updated is when the unit's status last changed (UnitStatus.lastUpdated), else when the page first saw it. */
  updated(id) {
    const u = this.units.get(id);
    const t = u && u.lastUpdated ? Date.parse(u.lastUpdated) : NaN;
    return Number.isFinite(t) ? t : this.created(id);
  }

  created(id) {
    const u = this.units.get(id);
    const t = u && u.created ? Date.parse(u.created) : NaN;
    return Number.isFinite(t) ? t : this.firstSeen.get(id) || Date.now();
  }
}

/** Confirm turns a button into a two-step one: the first press asks, the second acts. */
function confirmButton(label, ask, act) {
  const b = document.createElement('button');
  b.type = 'button';
  b.textContent = label;
  b.className = 'small';
  let armed = 0;
  b.addEventListener('click', async () => {
    if (!armed) {
      b.textContent = ask;
      b.classList.add('armed');
      armed = setTimeout(() => { armed = 0; b.textContent = label; b.classList.remove('armed'); }, 5000);
      return;
    }
    clearTimeout(armed);
    armed = 0;
    b.disabled = true;
    b.textContent = label + '…';
    try {
      await act();
    } finally {
      b.disabled = false;
      b.textContent = label;
      b.classList.remove('armed');
    }
  });
  return b;
}

/**
 * unitActions builds the cancel and release buttons a principal may use
 * (access says what the token may do; unknown means try and report).
 */
export function unitActions(u, access, report, released) {
  const out = [];
  const id = u.unitId;
  const finished = u.complete || /^(canceled|failed|succeeded)$/i.test(stateName(u));
  if (!finished && access.workCancel !== false) {
    const b = confirmButton('Cancel', 'Confirm cancel', async () => {
      try {
        const r = await call('POST', `/v1/work/${encodeURIComponent(id)}:cancel`, {});
        report(r.pending ? `Cancel of ${id} sent; the remote node will be told when it is reachable.` : `Canceled ${id}.`);
      } catch (e) { report(`Cancel of ${id} failed: ${e.message}`, true); }
    });
    b.dataset.action = 'cancel';
    b.setAttribute('aria-label', `Cancel unit ${id}`);
    out.push(b);
  }
  if (access.workRelease !== false) {
    const b = confirmButton('Release', 'Confirm release', async () => {
      try {
        const r = await call('DELETE', `/v1/work/${encodeURIComponent(id)}`);
        report(r.pending ? `Release of ${id} sent; the remote node will be told when it is reachable.` : `Released ${id}.`);
        if (!r.pending && released) released(id);
      } catch (e) { report(`Release of ${id} failed: ${e.message}`, true); }
    });
    b.dataset.action = 'release';
    b.setAttribute('aria-label', `Release unit ${id}`);
    out.push(b);
  }
  return out;
}

/** WorkTable keeps the table's rows in step with the model, row by row. */
export class WorkTable {
  constructor(table, empty, count, model, getAccess, report) {
    this.tbody = table.tBodies[0];
    this.empty = empty;
    this.count = count;
    this.model = model;
    this.getAccess = getAccess;
    this.report = report;
    this.rows = new Map(); // id -> {tr, key}
    model.on(() => this.render());
    setInterval(() => this.ages(), 5000);
  }

  render() {
    const ids = [...this.model.units.keys()].sort((a, b) => this.model.created(b) - this.model.created(a) || (a < b ? -1 : 1));
    const access = this.getAccess();
    for (const [id, r] of this.rows) if (!this.model.units.has(id)) { r.tr.remove(); this.rows.delete(id); }
    let prev = null;
    for (const id of ids) {
      const u = this.model.units.get(id);
      let r = this.rows.get(id);
      const key = JSON.stringify([u.state, u.stateName, u.stdoutSize, u.workType, u.node, u.complete, u.detail, u.lastUpdated, access]);
      if (!r) {
        const tr = document.createElement('tr');
        tr.dataset.unit = id;
        r = { tr, key: '' };
        this.rows.set(id, r);
      }
      if (r.key !== key) {
        r.key = key;
        this.fill(r.tr, u, access);
      }
      const want = prev ? prev.nextSibling : this.tbody.firstChild;
      if (want !== r.tr) this.tbody.insertBefore(r.tr, want);
      prev = r.tr;
    }
    this.empty.hidden = ids.length > 0;
    this.count.textContent = `(${ids.length})`;
  }

  fill(tr, u, access) {
    // Cells are made once and updated in place, so a focused link or
    // button stays where it is while the unit changes.
    const id = u.unitId;
    if (!tr.cells.length) {
      for (let i = 0; i < 7; i++) tr.insertCell();
      const a = document.createElement('a');
      a.href = `#/work/${encodeURIComponent(id)}`;
      a.textContent = id;
      a.className = 'mono';
      tr.cells[0].append(a);
      tr.cells[1].append(document.createElement('span'));
      tr.cells[4].className = 'age';
      tr.cells[5].className = 'num';
      tr.cells[6].className = 'actions';
    }
    const [, st, type, node, ag, out, act] = tr.cells;
    const badge = st.firstChild;
    badge.className = `state state-${stateName(u).toLowerCase()}`;
    badge.textContent = stateName(u);
    st.title = u.detail || '';
    type.textContent = u.workType || '';
    node.textContent = u.node || '';
    ag.textContent = age(Date.now() - this.model.updated(id));
    ag.title = u.lastUpdated ? `status last changed ${u.lastUpdated}` : '';
    out.textContent = bytes(u.stdoutSize);
    const acts = JSON.stringify([!!u.complete, stateName(u), access]);
    if (act.dataset.key !== acts) {
      act.dataset.key = acts;
      const focused = act.contains(document.activeElement) ? document.activeElement.dataset.action : '';
      act.replaceChildren(...unitActions(u, access, this.report, (x) => this.model.remove(x)));
      if (focused) (act.querySelector(`[data-action="${focused}"]`) || tr.cells[0].firstChild).focus();
    }
  }

  ages() {
    for (const [id, r] of this.rows) {
      const c = r.tr.querySelector('.age');
      if (c) c.textContent = age(Date.now() - this.model.updated(id));
    }
  }
}

/** UnitPage shows one unit and streams its output while the page is open. */
export class UnitPage {
  constructor(root, model, getAccess) {
    this.root = root;
    this.model = model;
    this.getAccess = getAccess;
    this.id = '';
    this.abort = null;
    this.offset = 0;
    this.dec = null;
    this.q = (s) => root.querySelector(s);
    model.on((id) => { if (this.id && (id === '' || id === this.id)) this.meta(); });
  }

  open(id) {
    this.close();
    this.id = id;
    this.offset = 0;
    this.dec = new TextDecoder();
    this.q('#unit-id').textContent = id;
    this.q('#unit-output').textContent = '';
    this.q('#unit-error').textContent = '';
    this.abort = new AbortController();
    const signal = this.abort.signal;
    if (!this.model.units.has(id)) {
      call('GET', `/v1/work/${encodeURIComponent(id)}`, undefined, signal)
        .then((st) => { if (this.id === id) this.model.set(st); })
        .catch((e) => { if (e.name !== 'AbortError') this.error(e); });
    }
    this.meta();
    this.follow(id, signal);
  }

  close() {
    if (this.abort) this.abort.abort();
    this.abort = null;
    this.id = '';
  }

  error(e) { this.q('#unit-error').textContent = e.message; }

  report(msg, bad) {
    const el = this.q('#unit-error');
    el.textContent = msg;
    el.classList.toggle('ok', !bad);
  }

  /** follow streams output from the last byte held; it resumes after a failure. */
  async follow(id, signal) {
    const out = this.q('#unit-output');
    let delay = 500;
    while (!signal.aborted) {
      try {
        await stream(`/v1/work/${encodeURIComponent(id)}/results?offset=${this.offset}`, (chunk) => {
          const data = b64bytes(chunk.data);
          if (!data.length) return;
          const at = Number(chunk.offset || 0);
          if (at > this.offset) return; // never leave a gap
          const fresh = data.subarray(this.offset - at);
          if (!fresh.length) return;
          this.offset += fresh.length;
          const stick = out.scrollTop + out.clientHeight >= out.scrollHeight - 4;
          out.append(this.dec.decode(fresh, { stream: true }));
          if (stick) out.scrollTop = out.scrollHeight;
          this.q('#output-size').textContent = `(${bytes(this.offset)})`;
        }, signal);
        // The node ends the stream when the unit is complete (or canceled).
        const u = this.model.units.get(id);
        if (!u || u.complete || /cancel|fail|succe/i.test(stateName(u))) return;
        delay = 500;
      } catch (e) {
        if (e.name === 'AbortError' || signal.aborted) return;
        if (e instanceof ApiError && (e.status === 404 || e.status === 401 || e.status === 403 || e.status === 400)) {
          this.error(e);
          return;
        }
        this.error(e);
        delay = Math.min(delay * 2, 10000);
      }
      await new Promise((r) => setTimeout(r, delay));
    }
  }

  meta() {
    const u = this.model.units.get(this.id);
    const dl = this.q('#unit-meta');
    dl.replaceChildren();
    const acts = this.q('#unit-actions');
    if (!u) { acts.replaceChildren(); acts.dataset.key = ''; return; }
    const row = (k, v) => {
      const dt = document.createElement('dt');
      dt.textContent = k;
      const dd = document.createElement('dd');
      dd.textContent = v;
      dl.append(dt, dd);
      return dd;
    };
    row('State', stateName(u)).className = `state state-${stateName(u).toLowerCase()}`;
    row('Detail', u.detail || '');
    row('Work type', u.workType || '');
    row('Node', u.node || '');
    row('Updated', age(Date.now() - this.model.updated(this.id)) + ' ago');
    row('Output', bytes(u.stdoutSize));
    if (u.extraData && typeof u.extraData === 'object') row('Extra', JSON.stringify(u.extraData));
    // Rebuilt only when they change, so a press in progress (ask, then
    // confirm) survives the unit's output growing.
    const key = JSON.stringify([this.id, !!u.complete, stateName(u), this.getAccess()]);
    if (acts.dataset.key !== key) {
      acts.dataset.key = key;
      acts.replaceChildren(...unitActions(u, this.getAccess(), (m, bad) => this.report(m, bad), () => { location.hash = '#/'; }));
    }
  }
}
