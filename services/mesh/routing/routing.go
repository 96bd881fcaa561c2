// Package routing computes the next-hop table of a node from the mesh's
// link-state topology (docs/protocol.md §6.4).
package routing

import (
	"container/heap"
)

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
	dist := map[string]float64{self: 0}
	first := map[string]string{}
	done := map[string]bool{}
	pq := &queue{{node: self}}
	for pq.Len() > 0 {
		it := heap.Pop(pq).(item)
		if done[it.node] || it.cost != dist[it.node] || it.hop != first[it.node] {
			continue // stale entry
		}
		done[it.node] = true
		for nb, c := range topo[it.node] {
			if _, known := topo[nb]; !known || nb == self || done[nb] || !(c > 0) {
				continue
			}
			hop := it.hop
			if it.node == self {
				hop = nb
			}
			nd := it.cost + c
			old, seen := dist[nb]
			if !seen || nd < old || (nd == old && hop < first[nb]) {
				dist[nb] = nd
				first[nb] = hop
				heap.Push(pq, item{node: nb, cost: nd, hop: hop})
			}
		}
	}
	delete(dist, self)
	return first, dist
}

type item struct {
	node string
	cost float64
	hop  string
}

// queue orders by cost, then by node name so pops are deterministic.
type queue []item

func (q queue) Len() int { return len(q) }
func (q queue) Less(i, j int) bool {
	if q[i].cost != q[j].cost {
		return q[i].cost < q[j].cost
	}
	return q[i].node < q[j].node
}
func (q queue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *queue) Push(x any)   { *q = append(*q, x.(item)) }
func (q *queue) Pop() any {
	old := *q
	it := old[len(old)-1]
	*q = old[:len(old)-1]
	return it
}
