// The topology graph: d3-force lays the nodes out, SVG draws them. update()
// joins the new view to what is on screen by node and link ID, so a change
// moves, adds or fades out only what changed (the simulation keeps every
// node's position and warms up again a little) instead of redrawing.
// Nodes are focusable buttons (Tab, then Enter or Space selects one).

import { forceSimulation, forceLink, forceManyBody, forceX, forceY, forceCollide } from 'd3-force';
import { select } from 'd3-selection';
import { zoom, zoomIdentity } from 'd3-zoom';
import { bytes, rate, seconds } from './format.js';
import { durSeconds } from './mesh.js';

const SVGNS = 'http://www.w3.org/2000/svg';
const LEAVE_MS = 600; // matches the .leaving transition in style.css

export class Graph {
  constructor(svg, { onSelect }) {
    this.svg = svg;
    this.onSelect = onSelect;
    this.selected = '';
    this.nodes = new Map(); // id -> simulation node {id, x, y, ...}
    this.links = new Map(); // id -> {id, source, target, ...}
    this.viewport = el('g', { class: 'viewport' });
    this.linkLayer = el('g', { class: 'links' });
    this.nodeLayer = el('g', { class: 'nodes' });
    this.viewport.append(this.linkLayer, this.nodeLayer);
    svg.append(this.viewport);
    this.first = true;

    this.sim = forceSimulation([])
      .force('link', forceLink([]).id((d) => d.id).distance(70).strength(0.6))
      .force('charge', forceManyBody().strength(-220).distanceMax(500))
      .force('x', forceX(0).strength(0.04))
      .force('y', forceY(0).strength(0.04))
      .force('collide', forceCollide(18))
      .alphaDecay(0.04)
      .on('tick', () => this.draw());
    this.sim.stop();

    this.zoom = zoom().scaleExtent([0.1, 4]).on('zoom', (e) => {
      this.viewport.setAttribute('transform', e.transform.toString());
    });
    select(svg).call(this.zoom).on('dblclick.zoom', null);
  }

  /** update shows view (MeshModel.view()); new things fade in, gone ones fade out. */
  update(view) {
    const keep = new Set();
    let added = 0; // new nodes
    let relinked = 0; // new links between nodes already shown
    for (const n of view.nodes) {
      keep.add(n.id);
      let d = this.nodes.get(n.id);
      if (!d) {
        d = { id: n.id };
        this.place(d, view);
        d.g = this.nodeElement(d);
        this.nodes.set(n.id, d);
        added++;
      }
      d.g.classList.remove('leaving');
      Object.assign(d, n);
      d.g.classList.toggle('local', n.local);
      d.g.classList.toggle('gone', !n.reachable);
      d.g.setAttribute('aria-label', `${n.id}${n.local ? ', this node' : ''}, ${n.reachable ? 'reachable' : 'unreachable'}`);
    }
    for (const [id, d] of this.nodes) {
      if (!keep.has(id)) { this.leave(d.g); this.nodes.delete(id); }
    }

    const lkeep = new Set();
    const label = view.links.length <= 40;
    for (const l of view.links) {
      lkeep.add(l.id);
      let d = this.links.get(l.id);
      if (!d) {
        d = { id: l.id };
        d.g = el('g', { class: 'link' });
        d.line = el('line');
        d.text = el('text', { class: 'link-label' });
        d.title = el('title');
        d.g.append(d.line, d.text, d.title);
        d.g.dataset.a = l.a;
        d.g.dataset.b = l.b;
        this.linkLayer.append(d.g);
        this.links.set(l.id, d);
        relinked++;
      }
      d.g.classList.remove('leaving');
      Object.assign(d, l);
      d.source = l.a;
      d.target = l.b;
      d.g.classList.toggle('down', !l.up);
      d.g.classList.toggle('own', l.local);
      const text = linkText(l);
      d.title.textContent = `${l.a} – ${l.b}: ${text.long}`;
      d.text.textContent = label || l.local ? text.short : '';
      d.g.dataset.cost = String(l.cost);
      d.g.dataset.up = String(l.up);
    }
    for (const [id, d] of this.links) {
      if (!lkeep.has(id)) { this.leave(d.g); this.links.delete(id); }
    }

    this.sim.nodes([...this.nodes.values()]);
    this.sim.force('link').links([...this.links.values()]);
    if (this.first && this.nodes.size > 0) {
      // Settle the first layout before showing it: a page with 200 nodes
      // appears laid out instead of exploding from the centre.
      this.first = false;
      this.sim.alpha(1);
      for (let i = 0; i < 200 && this.sim.alpha() > 0.05; i++) this.sim.tick();
      this.draw();
      this.fit(false);
      this.sim.alpha(0.05).restart();
    } else if (added > 0 || view.nodes.length !== this.drawnNodes) {
      this.sim.alpha(Math.max(this.sim.alpha(), 0.3)).restart();
    } else if (relinked > 0) {
      // A link came back: let the layout settle a little, without
      // shaking the whole graph (flapping links would keep it moving).
      this.sim.alpha(Math.max(this.sim.alpha(), 0.08)).restart();
    } else {
      this.draw();
    }
    this.drawnNodes = view.nodes.length;
    this.select(this.selected, false);
  }

  place(d, view) {
    // A new node starts beside a neighbour already on screen, so it grows
    // out of the graph instead of flying in from the centre.
    for (const l of view.links) {
      const other = l.a === d.id ? l.b : l.b === d.id ? l.a : '';
      const o = other && this.nodes.get(other);
      if (o && o.x !== undefined) {
        d.x = o.x + (Math.random() - 0.5) * 40;
        d.y = o.y + (Math.random() - 0.5) * 40;
        return;
      }
    }
  }

  nodeElement(d) {
    const g = el('g', { class: 'node entering', tabindex: '0', role: 'button' });
    g.dataset.id = d.id;
    const c = el('circle', { r: '9' });
    const t = el('text', { dy: '-14', 'text-anchor': 'middle' });
    t.textContent = d.id;
    g.append(c, t);
    g.addEventListener('click', () => this.select(d.id, true));
    g.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); this.select(d.id, true); }
    });
    this.nodeLayer.append(g);
    requestAnimationFrame(() => g.classList.remove('entering'));
    return g;
  }

  leave(g) {
    g.classList.add('leaving');
    g.removeAttribute('tabindex');
    setTimeout(() => { if (g.classList.contains('leaving')) g.remove(); }, LEAVE_MS);
  }

  select(id, user) {
    this.selected = id;
    for (const d of this.nodes.values()) d.g.classList.toggle('selected', d.id === id);
    for (const d of this.links.values()) d.g.classList.toggle('selected', id !== '' && (d.a === id || d.b === id));
    if (user) this.onSelect(id);
  }

  draw() {
    for (const d of this.links.values()) {
      const s = d.source;
      const t = d.target;
      if (typeof s !== 'object' || typeof t !== 'object') continue;
      d.line.setAttribute('x1', f(s.x)); d.line.setAttribute('y1', f(s.y));
      d.line.setAttribute('x2', f(t.x)); d.line.setAttribute('y2', f(t.y));
      d.text.setAttribute('x', f((s.x + t.x) / 2)); d.text.setAttribute('y', f((s.y + t.y) / 2 - 3));
    }
    for (const d of this.nodes.values()) d.g.setAttribute('transform', `translate(${f(d.x)},${f(d.y)})`);
  }

  /** fit zooms so that every node is visible. */
  fit(animate = true) {
    const ns = [...this.nodes.values()];
    if (!ns.length) return;
    const xs = ns.map((n) => n.x);
    const ys = ns.map((n) => n.y);
    const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
    const w = this.svg.clientWidth || 600;
    const h = this.svg.clientHeight || 400;
    const k = Math.min(2, 0.9 / Math.max((x1 - x0 + 60) / w, (y1 - y0 + 60) / h));
    const t = zoomIdentity.translate(w / 2, h / 2).scale(k).translate(-(x0 + x1) / 2, -(y0 + y1) / 2);
    select(this.svg).call(this.zoom.transform, t);
  }

  zoomBy(k) { select(this.svg).call(this.zoom.scaleBy, k); }

  stop() { this.sim.stop(); }
}

function linkText(l) {
  const parts = [`cost ${l.cost}`];
  const long = [`cost ${l.cost}`];
  if (l.local) {
    const h = l.health || {};
    if (!l.up) { parts.push('down'); long.push('down' + (h.reason ? ` (${h.reason})` : '')); }
    const rtt = durSeconds(h.rtt);
    if (rtt !== undefined) { parts.push(seconds(rtt)); long.push('RTT ' + seconds(rtt)); }
    const r = l.rate;
    if (r && r.inPerS !== undefined) {
      parts.push(`${rate(r.inPerS + r.outPerS)}`);
      long.push(`in ${rate(r.inPerS)}, out ${rate(r.outPerS)}`);
    }
    if (h.bytesIn !== undefined) long.push(`${bytes(Number(h.bytesIn))} in, ${bytes(Number(h.bytesOut))} out in total`);
  }
  return { short: parts.join(' · '), long: long.join(', ') };
}

function f(v) { return Number.isFinite(v) ? v.toFixed(1) : '0'; }

function el(name, attrs = {}) {
  const e = document.createElementNS(SVGNS, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  return e;
}
