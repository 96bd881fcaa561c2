// Package routing computes the next-hop table of a node from the mesh's
// link-state topology (docs/protocol.md §6.4).
package routing

// Topology maps a node to its advertised neighbours and the cost of each
// edge node→neighbour. Only nodes that are keys are routable.
type Topology map[string]map[string]float64

// Table maps a destination node to the neighbour that is the first hop on
// a cheapest path to it. The source node itself is never a key.
type Table map[string]string

// Compute returns the first hop and the path cost for every node reachable
// from self. Ties between equal-cost paths are broken deterministically
// by preferring the lexicographically smaller first hop, so repeated
// computations on the same topology give the same table (upstream's tie
// choice is effectively random; any shortest path is loop-free).
func Compute(self string, topo Topology) (Table, map[string]float64) {
	// Per-node state lives in a slice indexed through one map, and the
	// queue is a typed heap: on a mesh of thousands of nodes every node
	// recomputes often while a start settles, and three maps looked up per
	// edge plus an allocation per queue push were most of the cost.
	idx := make(map[string]int32, len(topo))
	states := make([]nodeState, 0, len(topo))
	idx[self] = 0
	states = append(states, nodeState{name: self, seen: true})
	var pq queue
	pq.push(item{node: self})
	for len(pq) > 0 {
		it := pq.pop()
		cur := &states[it.i]
		if cur.done || it.cost != cur.dist || it.hop != cur.first {
			continue // stale entry
		}
		cur.done = true
		for nb, c := range topo[it.node] {
			if nb == self || !(c > 0) {
				continue
			}
			i, ok := idx[nb]
			if !ok {
				if _, known := topo[nb]; !known {
					continue
				}
				i = int32(len(states))
				idx[nb] = i
				states = append(states, nodeState{name: nb})
			}
			ns := &states[i]
			if ns.done {
				continue
			}
			hop := it.hop
			if it.node == self {
				hop = nb
			}
			nd := it.cost + c
			if !ns.seen || nd < ns.dist || (nd == ns.dist && hop < ns.first) {
				ns.seen, ns.dist, ns.first = true, nd, hop
				pq.push(item{node: nb, cost: nd, hop: hop, i: i})
			}
		}
	}
	first := make(Table, len(states)-1)
	dist := make(map[string]float64, len(states)-1)
	for _, ns := range states[1:] {
		if ns.seen {
			first[ns.name], dist[ns.name] = ns.first, ns.dist
		}
	}
	return first, dist
}

// nodeState is what Compute knows of one node.
type nodeState struct {
	name  string
	dist  float64
	first string
	seen  bool // dist and first are set
	done  bool // dist is final
}

// item is a queue entry: a tentative cost of reaching a node (states[i])
// through first hop hop.
type item struct {
	node string
	cost float64
	hop  string
	i    int32
}

// queue is a binary min-heap of items ordered by cost, then node name
// (the order only makes runs repeatable; ties in the result are decided
// by the first hop, above).
type queue []item

func (q queue) less(a, b int) bool {
	if q[a].cost != q[b].cost {
		return q[a].cost < q[b].cost
	}
	return q[a].node < q[b].node
}

func (q *queue) push(it item) {
	*q = append(*q, it)
	h := *q
	for j := len(h) - 1; j > 0; {
		parent := (j - 1) / 2
		if !h.less(j, parent) {
			break
		}
		h[j], h[parent] = h[parent], h[j]
		j = parent
	}
}

func (q *queue) pop() item {
	h := *q
	top := h[0]
	last := len(h) - 1
	h[0] = h[last]
	h[last] = item{}
	h = h[:last]
	for j := 0; ; {
		l, r, m := 2*j+1, 2*j+2, j
		if l < len(h) && h.less(l, m) {
			m = l
		}
		if r < len(h) && h.less(r, m) {
			m = r
		}
		if m == j {
			break
		}
		h[j], h[m] = h[m], h[j]
		j = m
	}
	*q = h
	return top
}
