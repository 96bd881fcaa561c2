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
	st := Status{
		NodeID:               n.id,
		Connections:          make([]Connection, 0, len(n.sessions)),
		RoutingTable:         maps.Clone(n.routes),
		KnownConnectionCosts: make(map[string]map[string]float64, len(n.topo)),
		Advertisements:       make([]Advertisement, 0, len(n.ads)),
	}
	for id, s := range n.sessions {
		st.Connections = append(st.Connections, Connection{NodeID: id, Cost: s.cost})
	}
	sort.Slice(st.Connections, func(i, j int) bool { return st.Connections[i].NodeID < st.Connections[j].NodeID })
	for node, edges := range n.topo {
		st.KnownConnectionCosts[node] = maps.Clone(edges)
	}
	now := time.Now()
	for key, stored := range n.ads {
		a := stored.ad
		ad := Advertisement{NodeID: a.NodeID, Service: a.Service, Time: a.Time, ConnType: ConnType(a.ConnType),
			Tags: maps.Clone(a.Tags)}
		if key.node == n.id {
			ad.Time = now // upstream shows the current time for its own services
		}
		if a.WorkCommands != nil {
			ad.WorkCommands = make([]WorkCommand, len(a.WorkCommands))
			for i, wc := range a.WorkCommands {
				ad.WorkCommands[i] = WorkCommand(wc)
			}
		}
		st.Advertisements = append(st.Advertisements, ad)
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
