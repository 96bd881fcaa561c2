package mesh

import (
	"maps"
	"sort"
	"time"
)

// Connection is a direct mesh connection in Status.
type Connection struct {
	NodeID string
	Cost   float64
	// Health is the link's figures (the first link to NodeID when several
	// backends reach it). Not part of the upstream status reply.
	Health LinkStats
}

// Advertisement is a known service advertisement in Status.
type Advertisement struct {
	NodeID       string
	Service      string
	Time         time.Time
	ConnType     ConnType
	Tags         map[string]string
	WorkCommands []WorkCommand
}

// Status is a snapshot of what receptorctl status shows about the mesh
// (docs/protocol.md §12.3).
type Status struct {
	NodeID               string
	Connections          []Connection                  // sorted by NodeID
	RoutingTable         map[string]string             // destination → next hop
	KnownConnectionCosts map[string]map[string]float64 // node → neighbour → cost
	Advertisements       []Advertisement               // sorted by NodeID, Service
}

// Status returns a copy of the node's mesh state.
func (n *Node) Status() Status {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.statusLocked()
}

func (n *Node) statusLocked() Status {
	st := Status{
		NodeID:               n.id,
		Connections:          make([]Connection, 0, len(n.sessions)),
		RoutingTable:         maps.Clone(n.routes),
		KnownConnectionCosts: make(map[string]map[string]float64, len(n.topo)),
		Advertisements:       make([]Advertisement, 0, len(n.ads)),
	}
	for id, s := range n.sessions {
		c := Connection{NodeID: id, Cost: s.cost}
		if s.link != nil {
			c.Health = s.link.statsLocked()
		}
		st.Connections = append(st.Connections, c)
	}
	sort.Slice(st.Connections, func(i, j int) bool { return st.Connections[i].NodeID < st.Connections[j].NodeID })
	for node, edges := range n.topo {
		st.KnownConnectionCosts[node] = maps.Clone(edges)
	}
	now := time.Now()
	for key, stored := range n.ads {
		ad := adOf(stored.ad)
		if key.node == n.id {
			ad.Time = now // upstream shows the current time for its own services
		}
		st.Advertisements = append(st.Advertisements, *ad)
	}
	for service, ad := range n.ownAds {
		if _, stored := n.ads[adKey{n.id, service}]; !stored {
			st.Advertisements = append(st.Advertisements, Advertisement{NodeID: n.id, Service: service, Time: now,
				ConnType: ad.ConnType, Tags: maps.Clone(ad.Tags), WorkCommands: cloneWork(ad.WorkCommands)})
		}
	}
	sort.Slice(st.Advertisements, func(i, j int) bool {
		a, b := st.Advertisements[i], st.Advertisements[j]
		if a.NodeID != b.NodeID {
			return a.NodeID < b.NodeID
		}
		return a.Service < b.Service
	})
	return st
}

func cloneWork(w []WorkCommand) []WorkCommand {
	if w == nil {
		return nil
	}
	return append([]WorkCommand{}, w...)
}

// Routes returns a copy of the routing table (destination → next hop):
// Status().RoutingTable without copying the rest of the state, which
// matters for callers that poll many nodes of a large mesh.
func (n *Node) Routes() map[string]string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return maps.Clone(n.routes)
}
