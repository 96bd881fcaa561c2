// The mesh as this node sees it, kept from GET /v1/status (or the first
// message of GET /v1/mesh/watch) and the watch's events. view() turns it
// into the nodes and links the graph draws.
//
// What the node knows (docs/architecture.md, "Routing"): its own links
// (sessions, with health), every node's advertised connection list
// (knownConnectionCosts), and the next hop toward every reachable node
// (routingTable). A node that left keeps its last connection list forever
// (the mesh never forgets a node), so "unreachable" is "known but not in the
// routing table"; the view shows such a node for HIDE_AFTER_MS after it
// became unreachable while the page watched, then drops it (unless the user
// asks to see unreachable nodes).

export const HIDE_AFTER_MS = 20000;

const num = (v) => (v === undefined || v === null || v === '' ? 0 : Number(v));

/** seconds of a protobuf Duration in JSON ("0.000250s"), or undefined. */
export function durSeconds(d) {
  if (typeof d !== 'string' || !d.endsWith('s')) return undefined;
  const v = parseFloat(d);
  return Number.isFinite(v) ? v : undefined;
}

export class MeshModel {
  constructor(now = () => Date.now()) {
    this.now = now;
    this.local = '';
    this.status = null;
    this.topo = new Map();    // node -> Map(neighbour -> cost)
    this.routes = new Map();  // destination -> next hop
    this.ads = new Map();     // "node\x00service" -> advertisement
    this.health = new Map();  // peer -> merged LinkHealth of our links to it
    this.rates = new Map();   // peer -> {t, bytesIn, bytesOut, inPerS, outPerS}
    this.goneSince = new Map(); // node -> ms when it became unreachable while watched
    this.loaded = false;
  }

  /** setStatus replaces everything with a NodeStatus (plus LinkHealth list). */
  setStatus(st, links) {
    const before = this.loaded ? new Set(this.reachableIds()) : null;
    this.status = st;
    this.local = st.nodeId || '';
    this.topo = new Map();
    for (const [node, cc] of Object.entries(st.knownConnectionCosts || {})) {
      this.topo.set(node, new Map(Object.entries((cc && cc.costs) || {}).map(([k, v]) => [k, num(v)])));
    }
    this.routes = new Map(Object.entries(st.routingTable || {}));
    this.ads = new Map();
    for (const ad of st.advertisements || []) this.ads.set(ad.nodeId + '\x00' + ad.service, ad);
    const hl = links || (st.connections || []).map((c) => c.health).filter(Boolean);
    const seen = new Set();
    for (const h of hl) { this.setHealth(h); seen.add(h.peer); }
    for (const c of st.connections || []) {
      if (!seen.has(c.nodeId)) this.setHealth({ peer: c.nodeId, up: true, cost: c.cost });
      seen.add(c.nodeId);
    }
    for (const p of [...this.health.keys()]) if (!seen.has(p)) this.health.delete(p);
    if (before) {
      for (const id of before) if (!this.isReachable(id)) this.markGone(id);
    }
    for (const id of this.reachableIds()) this.goneSince.delete(id);
    this.loaded = true;
  }

  /** setHealth merges one link's health, keeping byte rates per peer. */
  setHealth(h) {
    if (!h || !h.peer) return;
    const prev = this.health.get(h.peer);
    const merged = { ...(prev || {}), ...h };
    // A peer reached over several backends: the link is up if any is.
    this.health.set(h.peer, merged);
    if (h.bytesIn !== undefined || h.bytesOut !== undefined) {
      const t = this.now();
      const bi = num(h.bytesIn);
      const bo = num(h.bytesOut);
      const r = this.rates.get(h.peer);
      if (r && t > r.t && bi >= r.bytesIn && bo >= r.bytesOut) {
        const s = (t - r.t) / 1000;
        this.rates.set(h.peer, { t, bytesIn: bi, bytesOut: bo, inPerS: (bi - r.bytesIn) / s, outPerS: (bo - r.bytesOut) / s });
      } else if (!r) {
        this.rates.set(h.peer, { t, bytesIn: bi, bytesOut: bo });
      }
    }
  }

  isReachable(id) { return id === this.local || this.routes.has(id); }

  reachableIds() { return [this.local, ...this.routes.keys()].filter(Boolean); }

  markGone(id) {
    if (id !== this.local && !this.goneSince.has(id)) this.goneSince.set(id, this.now());
  }

  /**
   * apply applies one MeshEvent. It returns true when the event may change
   * edges between other nodes, which only a fresh status shows (the caller
   * then reloads the status, once for a burst of events).
   */
  apply(ev) {
    const k = (ev.kind || '').replace('MESH_EVENT_KIND_', '');
    switch (k) {
      case 'NODE_APPEARED':
        this.goneSince.delete(ev.nodeId);
        if (!this.routes.has(ev.nodeId)) this.routes.set(ev.nodeId, '');
        return true;
      case 'NODE_LEFT':
        this.routes.delete(ev.nodeId);
        this.markGone(ev.nodeId);
        return true;
      case 'ROUTE_CHANGED':
        if (ev.nextHop) {
          this.routes.set(ev.nodeId, ev.nextHop);
          this.goneSince.delete(ev.nodeId);
        } else if (this.routes.has(ev.nodeId)) {
          this.routes.delete(ev.nodeId);
          this.markGone(ev.nodeId);
        }
        return true;
      case 'LINK_UP':
        this.setHealth({ peer: ev.peer, backendKind: ev.backendKind, cost: ev.cost, up: true, downSince: null, reason: '' });
        this.edge(this.local, ev.peer, num(ev.cost));
        return true;
      case 'LINK_DOWN':
        this.setHealth({ peer: ev.peer, backendKind: ev.backendKind, up: false, rtt: ev.rtt, reason: ev.reason, downSince: ev.time });
        this.topo.get(this.local)?.delete(ev.peer);
        return true;
      case 'LINK_RTT':
        this.setHealth({ peer: ev.peer, rtt: ev.rtt, cost: ev.cost, ...(ev.health || {}) });
        return false;
      case 'ADVERTISEMENT':
        if (ev.advertisement) this.ads.set(ev.advertisement.nodeId + '\x00' + ev.advertisement.service, ev.advertisement);
        return false;
      case 'ADVERTISEMENT_CANCELLED':
        if (ev.advertisement) this.ads.delete(ev.advertisement.nodeId + '\x00' + ev.advertisement.service);
        return false;
      default:
        return false;
    }
  }

  edge(a, b, cost) {
    if (!a || !b) return;
    if (!this.topo.has(a)) this.topo.set(a, new Map());
    this.topo.get(a).set(b, cost);
  }

  /** adsOf lists a node's advertisements, by service. */
  adsOf(id) {
    return [...this.ads.values()].filter((a) => a.nodeId === id).sort((a, b) => (a.service < b.service ? -1 : 1));
  }

  /** workTypesOf lists the work types a node advertises. */
  workTypesOf(id) {
    const out = [];
    for (const ad of this.adsOf(id)) for (const wc of ad.workCommands || []) out.push(wc);
    return out;
  }

  /**
   * view is what the graph draws: nodes {id, local, reachable, gone} and
   * undirected links {id, a, b, cost, local, health}.
   */
  view(showGone) {
    const now = this.now();
    const ids = new Set([this.local]);
    for (const [n, nb] of this.topo) { ids.add(n); for (const m of nb.keys()) ids.add(m); }
    for (const n of this.routes.keys()) ids.add(n);
    for (const p of this.health.keys()) ids.add(p);
    ids.delete('');
    const nodes = [];
    let hidden = 0;
    for (const id of ids) {
      const reachable = this.isReachable(id);
      if (!reachable) {
        const since = this.goneSince.get(id);
        const recent = since !== undefined && now - since < HIDE_AFTER_MS;
        if (!recent && !showGone) { hidden++; continue; }
      }
      nodes.push({ id, local: id === this.local, reachable });
    }
    const shown = new Set(nodes.map((n) => n.id));
    const links = new Map();
    const add = (a, b, props) => {
      if (!shown.has(a) || !shown.has(b) || a === b) return;
      const [x, y] = a < b ? [a, b] : [b, a];
      const id = x + '\x00' + y;
      if (!links.has(id)) links.set(id, { id, a: x, b: y, ...props });
    };
    // Our own links: every peer we have had a session with (down ones too).
    for (const [peer, h] of this.health) {
      const r = this.rates.get(peer);
      add(this.local, peer, { cost: num(h.cost), local: true, up: h.up !== false, health: h, rate: r });
    }
    for (const [a, nb] of this.topo) {
      if (a === this.local) continue;
      for (const [b, cost] of nb) {
        if (b === this.local) continue; // ours are above, from our sessions
        const back = this.topo.get(b);
        // Both ends must list each other; an end that never sent a
        // connection list is taken at its neighbour's word. A node that
        // left keeps listing its old neighbours, which no longer list it.
        if (back && !back.has(a)) continue;
        add(a, b, { cost, local: false, up: true });
      }
    }
    return { nodes, links: [...links.values()], hidden };
  }
}
