package mesh

import (
	"time"

	"github.com/receptor-mesh/receptor/services/mesh/wire"
)

// handleAd applies docs/protocol.md §7.1 with tombstones for cancelled services, so a
// Cancel is accepted and flooded at most once (fixes upstream's storm).
func (n *Node) handleAd(msg []byte, from *session) {
	n.stats.adsReceived.Add(1)
	a, err := wire.DecodeAd(msg)
	if err != nil {
		n.log.Debug("mesh: bad service advertisement", "err", err)
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if limit := time.Now().Add(maxAdFutureSkew); a.Time.After(limit) {
		n.warnLimitedLocked("ad-future", "mesh: refusing a service advertisement dated in the future",
			"node", a.NodeID, "service", a.Service, "time", a.Time, "max_skew", maxAdFutureSkew)
		return
	}
	if !n.storeAdLocked(a, msg) {
		return
	}
	for _, s := range n.sessions {
		if s != from && s.confirmed() {
			n.stats.adsSent.Add(1)
			s.enqueueCtrl(msg)
		}
	}
}

// storeAdLocked records a if it is strictly newer than what we hold (entry
// or tombstone) and reports whether it was accepted.
func (n *Node) storeAdLocked(a *wire.Advertisement, raw []byte) bool {
	key := adKey{a.NodeID, a.Service}
	cur, have := n.ads[key]
	if have && !a.Time.After(cur.ad.Time) {
		return false
	}
	tomb, dead := n.tombstones[key]
	if dead && !a.Time.After(tomb) {
		return false
	}
	if !have && !dead && len(n.ads)+len(n.tombstones) >= maxAdvertisements {
		n.warnLimitedLocked("ads", "mesh: too many service advertisements; dropping", "node", a.NodeID, "service", a.Service)
		return false
	}
	old := 0
	if have {
		old += storedAdBytes(key, cur.raw)
	}
	if dead {
		old += tombBytes(key)
	}
	cost := tombBytes(key)
	if !a.Cancel {
		cost = storedAdBytes(key, raw)
	}
	if cost > old && n.adBytes-old+cost > n.opts.MaxAdvertisementBytes {
		n.warnLimitedLocked("ad-bytes", "mesh: stored service advertisements at their memory bound; dropping",
			"node", a.NodeID, "service", a.Service, "bytes", n.adBytes, "limit", n.opts.MaxAdvertisementBytes)
		return false
	}
	n.adBytes += cost - old
	if a.Cancel {
		delete(n.ads, key)
		n.tombstones[key] = a.Time
	} else {
		delete(n.tombstones, key)
		n.ads[key] = &storedAd{ad: a, raw: raw}
	}
	n.adChangedLocked(a, cur)
	return true
}

func toWireAd(nodeID, service string, ad ServiceAd, now time.Time, cancel bool) *wire.Advertisement {
	a := &wire.Advertisement{NodeID: nodeID, Service: service, Time: now, ConnType: byte(ad.ConnType), Cancel: cancel}
	if !cancel {
		a.Tags = ad.Tags
		if ad.WorkCommands != nil {
			a.WorkCommands = make([]wire.WorkCommand, len(ad.WorkCommands))
			for i, wc := range ad.WorkCommands {
				a.WorkCommands[i] = wire.WorkCommand{WorkType: wc.WorkType, Secure: wc.Secure}
			}
		}
	}
	return a
}

// advertiseLocked sends fresh ads of our advertised services. With to ==
// nil it floods them to every session (the periodic run); otherwise it
// sends them, plus every stored remote ad, on the new session only.
func (n *Node) advertiseLocked(to *session) {
	now := time.Now().Round(0) // wall clock only, like a decoded Time
	for service, ad := range n.ownAds {
		a := toWireAd(n.id, service, ad, now, false)
		msg, err := wire.EncodeAd(a)
		if err != nil {
			n.log.Warn("mesh: cannot encode advertisement", "service", service, "err", err)
			continue
		}
		n.storeAdLocked(a, msg)
		if to != nil {
			n.stats.adsSent.Add(1)
			to.enqueueCtrl(msg)
			continue
		}
		for _, s := range n.sessions {
			if s.confirmed() { // a passive session gets ads once its peer listed us
				n.stats.adsSent.Add(1)
				s.enqueueCtrl(msg)
			}
		}
	}
	if to == nil {
		return
	}
	for key, st := range n.ads {
		if key.node != n.id {
			to.enqueueCtrl(st.raw)
		}
	}
}

// cancelAdLocked floods a Cancel for a closed advertised service.
func (n *Node) cancelAdLocked(service string, ad ServiceAd) {
	a := toWireAd(n.id, service, ad, time.Now().Round(0), true)
	msg, err := wire.EncodeAd(a)
	if err != nil {
		n.log.Warn("mesh: cannot encode cancel", "service", service, "err", err)
		return
	}
	n.storeAdLocked(a, msg)
	for _, s := range n.sessions {
		if s.confirmed() {
			s.enqueueCtrl(msg)
		}
	}
}
