package mesh

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Collector returns a Prometheus collector of the node's figures (per link
// and node-wide). It reads the node's counters when scraped; the node
// itself never touches Prometheus objects. Register it once per node.
func (n *Node) Collector() prometheus.Collector { return &collector{n: n} }

type collector struct{ n *Node }

var linkLabels = []string{"peer", "backend", "direction"}

func linkDesc(name, help string) *prometheus.Desc {
	return prometheus.NewDesc("receptor_mesh_link_"+name, help, linkLabels, nil)
}

func nodeDesc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("receptor_mesh_"+name, help, labels, nil)
}

var (
	descLinkUp        = linkDesc("up", "1 while a session with the peer over this backend is established, else 0.")
	descLinkSince     = linkDesc("established_timestamp_seconds", "When the link's current session was established (Unix time); absent while down.")
	descLinkLastRecv  = linkDesc("last_received_timestamp_seconds", "When the peer's last message arrived over this link (Unix time).")
	descLinkBytesIn   = linkDesc("received_bytes_total", "Mesh message bytes received over the link.")
	descLinkBytesOut  = linkDesc("sent_bytes_total", "Mesh message bytes handed to the link's transport.")
	descLinkMsgsIn    = linkDesc("received_messages_total", "Mesh messages received over the link.")
	descLinkMsgsOut   = linkDesc("sent_messages_total", "Mesh messages handed to the link's transport.")
	descLinkQueue     = linkDesc("send_queue_messages", "Messages waiting in the link's send queues.")
	descLinkQueueB    = linkDesc("send_queue_bytes", "Bytes waiting in the link's send queues.")
	descLinkDrops     = linkDesc("send_queue_drops_total", "Messages dropped because the link's send queue was full.")
	descLinkRTT       = linkDesc("rtt_seconds", "Last measured round-trip time of a ping over the link; absent until measured.")
	descLinkCost      = linkDesc("cost", "The link's routing cost.")
	descLinkIdle      = linkDesc("idle_teardowns_total", "Sessions ended because the peer sent nothing for the idle timeout.")
	descLinkRedials   = linkDesc("redials_total", "Sessions established again over this link after an earlier one ended.")
	descKnownNodes    = nodeDesc("known_nodes", "Nodes known from routing updates, this node included.")
	descRoutes        = nodeDesc("routes", "Reachable destinations in the routing table.")
	descAds           = nodeDesc("advertisements", "Stored service advertisements, this node's own included.")
	descUpdatesSent   = nodeDesc("routing_updates_sent_total", "Routing updates queued to peers, own and flooded.")
	descUpdatesRecv   = nodeDesc("routing_updates_received_total", "Routing updates received from peers.")
	descUpdatesIgn    = nodeDesc("routing_updates_ignored_total", "Received routing updates already seen or not newer than the one held.")
	descRecompute     = nodeDesc("route_recompute_duration_seconds", "Time taken by route table recomputations.")
	descAdsRecv       = nodeDesc("advertisements_received_total", "Service advertisements received from peers.")
	descAdsSent       = nodeDesc("advertisements_sent_total", "Service advertisements queued to peers, own and flooded.")
	descOriginated    = nodeDesc("datagrams_originated_total", "Data messages this node sent into the mesh.")
	descDelivered     = nodeDesc("datagrams_delivered_total", "Data messages delivered to a local socket or reserved service.")
	descForwarded     = nodeDesc("datagrams_forwarded_total", "Data messages passed on toward another node.")
	descDropped       = nodeDesc("datagrams_dropped_total", "Data messages dropped, by reason.", "reason")
	descSubscriptions = nodeDesc("event_subscribers", "Subscribers of the node's event stream (WatchMesh calls).")
)

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descLinkUp, descLinkSince, descLinkLastRecv, descLinkBytesIn, descLinkBytesOut,
		descLinkMsgsIn, descLinkMsgsOut, descLinkQueue, descLinkQueueB, descLinkDrops, descLinkRTT, descLinkCost,
		descLinkIdle, descLinkRedials, descKnownNodes, descRoutes, descAds, descUpdatesSent, descUpdatesRecv,
		descUpdatesIgn, descRecompute, descAdsRecv, descAdsSent, descOriginated, descDelivered, descForwarded,
		descDropped, descSubscriptions} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	for _, l := range c.n.Links() {
		lv := []string{l.Peer, l.Backend, l.Direction}
		up := 0.0
		if l.Up {
			up = 1
			gauge(descLinkSince, float64(l.EstablishedSince.UnixNano())/1e9, lv...)
		}
		gauge(descLinkUp, up, lv...)
		if !l.LastReceived.IsZero() {
			gauge(descLinkLastRecv, float64(l.LastReceived.UnixNano())/1e9, lv...)
		}
		if l.RTT > 0 {
			gauge(descLinkRTT, l.RTT.Seconds(), lv...)
		}
		gauge(descLinkCost, l.Cost, lv...)
		gauge(descLinkQueue, float64(l.QueuedMessages), lv...)
		gauge(descLinkQueueB, float64(l.QueuedBytes), lv...)
		counter(descLinkBytesIn, l.BytesIn, lv...)
		counter(descLinkBytesOut, l.BytesOut, lv...)
		counter(descLinkMsgsIn, l.MessagesIn, lv...)
		counter(descLinkMsgsOut, l.MessagesOut, lv...)
		counter(descLinkDrops, l.Drops, lv...)
		counter(descLinkIdle, l.IdleTeardowns, lv...)
		counter(descLinkRedials, l.Redials, lv...)
	}
	k := c.n.Counters()
	gauge(descKnownNodes, float64(k.KnownNodes))
	gauge(descRoutes, float64(k.Routes))
	gauge(descAds, float64(k.Advertisements))
	counter(descUpdatesSent, k.RouteUpdatesSent)
	counter(descUpdatesRecv, k.RouteUpdatesReceived)
	counter(descUpdatesIgn, k.RouteUpdatesIgnored)
	buckets := make(map[float64]uint64, len(RecomputeBuckets))
	var cum uint64
	for i, b := range RecomputeBuckets {
		cum += k.RecomputeBuckets[i]
		buckets[b] = cum
	}
	ch <- prometheus.MustNewConstHistogram(descRecompute, k.Recomputes, k.RecomputeSeconds, buckets)
	counter(descAdsRecv, k.AdsReceived)
	counter(descAdsSent, k.AdsSent)
	counter(descOriginated, k.DatagramsOriginated)
	counter(descDelivered, k.DatagramsDelivered)
	counter(descForwarded, k.DatagramsForwarded)
	for r := DropReason(0); r < numDropReasons; r++ {
		counter(descDropped, k.Dropped[r], r.String())
	}
	gauge(descSubscriptions, float64(k.Subscribers))
}
