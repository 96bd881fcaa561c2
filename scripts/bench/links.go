package main

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/receptor-mesh/receptor/services/control/client"
)

// The "links" section: the line node1 —K— node2 —K— node3 for each link
// kind K (tcp, ws, udp), started once with our binaries and once with
// upstream's (upstream.go), measuring a tcp-server → 2 hops → tcp-client
// stream and a 2-hop ping, next to raw loopback TCP measured between the
// transfers. Only the command line both implementations share is used,
// and only the control socket is asked (upstream has no gRPC).

// linkKinds are the backends the section compares.
var linkKinds = []string{"tcp", "ws", "udp"}

// linkArgs returns the listener entity for port and the peer entity that
// dials it.
func linkArgs(kind string, port int) (listen, dial []string) {
	p := strconv.Itoa(port)
	switch kind {
	case "ws":
		return []string{"--ws-listener", "port=" + p, "bindaddr=127.0.0.1", "path=/mesh"},
			[]string{"--ws-peer", "address=ws://127.0.0.1:" + p + "/mesh"}
	case "udp":
		return []string{"--udp-listener", "port=" + p, "bindaddr=127.0.0.1"},
			[]string{"--udp-peer", "address=127.0.0.1:" + p}
	default:
		return []string{"--tcp-listener", "port=" + p, "bindaddr=127.0.0.1"},
			[]string{"--tcp-peer", "address=127.0.0.1:" + p}
	}
}

// line3 is a running 3-node line of one implementation over one link kind.
type line3 struct {
	nodes     []*proc
	tcpServer string // node1's tcp-server → node3's "sink"
	ctl1      string // node1's control socket
	ctl3      string // node3's control socket
}

// nodeExtra is appended to the command lines of node1 and node3 (the
// full nodes), e.g. work types.
func startLine3(ctx context.Context, o options, ps *ports, dir string, im impl, kind, sinkAddr string, env, nodeExtra []string) (*line3, error) {
	var p [3]int
	for i := range p {
		var err error
		if p[i], err = ps.next(); err != nil {
			return nil, err
		}
	}
	l1, d1 := linkArgs(kind, p[0])
	l2, d2 := linkArgs(kind, p[1])
	tag := im.name + "-" + kind
	path := func(s string) string { return filepath.Join(dir, tag+"-"+s) }
	l := &line3{tcpServer: "127.0.0.1:" + strconv.Itoa(p[2]), ctl1: path("n1.sock"), ctl3: path("n3.sock")}
	common := func(id, short string) []string {
		return []string{"--node", "id=" + id, "datadir=" + path(short+"data"),
			"--control-service", "service=control", "filename=" + path(short+".sock")}
	}
	specs := []struct {
		id, role string
		args     []string
	}{
		{"node1", roleNode, slices.Concat(common("node1", "n1"), l1,
			[]string{"--tcp-server", "port=" + strconv.Itoa(p[2]), "bindaddr=127.0.0.1", "remotenode=node3", "remoteservice=sink"}, nodeExtra)},
		{"node2", roleRouter, slices.Concat(common("node2", "n2"), d1, l2)},
		{"node3", roleNode, slices.Concat(common("node3", "n3"), d2,
			[]string{"--tcp-client", "service=sink", "address=" + sinkAddr}, nodeExtra)},
	}
	for _, s := range specs {
		pr, err := startProc(o.logger, im.bin(s.role), tag+"-"+s.id, dir, s.args, env)
		if err != nil {
			l.stop()
			return nil, err
		}
		l.nodes = append(l.nodes, pr)
	}
	ready := func(ctx context.Context) bool {
		r1, err := ctlRoutes(ctx, l.ctl1)
		if err != nil || r1["node3"] == "" {
			return false
		}
		r3, err := ctlRoutes(ctx, l.ctl3)
		return err == nil && r3["node1"] != ""
	}
	if err := waitFor(ctx, tag+" line routes", l.nodes[0], ready); err != nil {
		l.stop()
		return nil, err
	}
	return l, nil
}

func (l *line3) stop() {
	for i := len(l.nodes) - 1; i >= 0; i-- {
		l.nodes[i].stop()
	}
}

// ctlCommand runs one command on a fresh control connection (upstream
// closes the connection after most commands).
func ctlCommand(ctx context.Context, sock, cmd string, out any) error {
	c, err := client.Dial(ctx, "unix:"+sock, nil)
	if err != nil {
		return err
	}
	defer c.Close()
	raw, err := c.Command(ctx, cmd)
	if err != nil {
		return err
	}
	return json.Unmarshal(raw, out)
}

func ctlRoutes(ctx context.Context, sock string) (map[string]string, error) {
	var st struct{ RoutingTable map[string]string }
	err := ctlCommand(ctx, sock, `{"command":"status"}`, &st)
	return st.RoutingTable, err
}

// ctlPingSamples runs n control "ping" commands and returns the RTTs the
// node measured (the control round trip is not part of them).
func ctlPingSamples(ctx context.Context, sock, node string, n int) ([]time.Duration, error) {
	out := make([]time.Duration, 0, n)
	for i := range n {
		var r struct {
			Success bool
			Time    int64 // nanoseconds
			Error   string
		}
		if err := ctlCommand(ctx, sock, "ping "+node, &r); err != nil {
			return nil, fmt.Errorf("ping %s #%d: %w", node, i, err)
		}
		if !r.Success {
			return nil, fmt.Errorf("ping %s #%d: %s", node, i, r.Error)
		}
		out = append(out, time.Duration(r.Time))
	}
	return out, nil
}

// spread formats the median of rates (bytes/s) with their range.
func spread(rates []float64) (median float64, text string) {
	s := slices.Clone(rates)
	slices.Sort(s)
	median = s[len(s)/2]
	if len(s)%2 == 0 {
		median = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	text = fmt.Sprintf("%.1f MiB/s", median/(1<<20))
	if len(s) > 1 {
		text += fmt.Sprintf(" (%.1f–%.1f, n=%d)", s[0]/(1<<20), s[len(s)-1]/(1<<20), len(s))
	}
	return median, text
}

func linksSection(ctx context.Context, o options, ps *ports, dir string, env []string, rep *report) {
	s, err := newSink()
	if err != nil {
		rep.failed("links", "sink", err)
		return
	}
	defer s.close()
	var raws []float64
	rawOnce := func(ctx context.Context) {
		n, el, err := tcpTransfer(ctx, s, s.addr(), o.streamBytes, o.streamDur)
		if err == nil {
			raws = append(raws, rate(n, el))
		}
	}
	rctx, rcancel := context.WithTimeout(ctx, time.Minute)
	rawPing, rawPingErr := rawRelayPing(rctx, o, ps, dir, o.pingSamples)
	rcancel()
	type result struct {
		stream, ping *figure
	}
	for _, kind := range linkKinds {
		raws = raws[:0] // each kind's baseline: the raw transfers between its own
		res := map[string]*result{}
		for _, im := range o.impls() {
			r := &result{}
			res[im.name] = r
			r.stream, r.ping = linkRun(ctx, o, ps, dir, env, s, im, kind, rawOnce)
		}
		streamName := "2-hop stream over " + kind + " links (tcp-server → tcp-client → sink)"
		pingName := "ping over 2 " + kind + " links, median / p99 (control `ping`, node's RTT)"
		up := func(f func(*result) *figure) *figure {
			if r := res[implUpstream]; r != nil {
				return f(r)
			}
			return nil
		}
		ours := res[implOurs]
		sr := row{Group: "links", Name: streamName, Target: "≥ 30× upstream, ≥ 5 % of raw"}
		if ours.stream.err != nil {
			sr.Value, sr.Verdict = "error: "+oneLine(ours.stream.err.Error()), "MISS"
		} else {
			sr.Value = ours.stream.text
			if len(raws) > 0 {
				rawMed, rawText := spread(raws)
				sr.Baseline, sr.Ratio = "raw TCP "+rawText, pct(ours.stream.v/rawMed)
				okUp := true
				if u := up(func(r *result) *figure { return r.stream }); u != nil && u.err == nil {
					okUp = ours.stream.v >= 30*u.v
				}
				sr.Verdict = verdict(ours.stream.v >= 0.05*rawMed && okUp)
			}
		}
		rep.add(sideBySide(sr, ours.stream, up(func(r *result) *figure { return r.stream }), true))
		pr := row{Group: "links", Name: pingName, Target: "≤ ½ upstream"}
		if ours.ping.err != nil {
			pr.Value, pr.Verdict = "error: "+oneLine(ours.ping.err.Error()), "MISS"
		} else {
			pr.Value = ours.ping.text
			if rawPingErr != nil {
				pr.Baseline = "raw relay: error: " + oneLine(rawPingErr.Error())
			} else {
				raw := percentile(rawPing, 50)
				pr.Baseline = "raw TCP relay, 3 processes: " + ms(raw) + " / " + ms(percentile(rawPing, 99))
				pr.Ratio = fmt.Sprintf("%.1f× raw", ours.ping.v/raw.Seconds())
			}
			if u := up(func(r *result) *figure { return r.ping }); u != nil && u.err == nil {
				pr.Verdict = verdict(ours.ping.v <= u.v/2)
			}
		}
		rep.add(sideBySide(pr, ours.ping, up(func(r *result) *figure { return r.ping }), false))
	}
}

// linkRun starts one line, measures o.repeat transfers (each preceded by
// a raw TCP transfer, so the baseline shares the machine's state) and
// the pings, and stops the line.
func linkRun(ctx context.Context, o options, ps *ports, dir string, env []string, s *sink, im impl, kind string,
	rawOnce func(context.Context)) (stream, ping *figure) {
	stream, ping = &figure{}, &figure{}
	sctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	l, err := startLine3(sctx, o, ps, dir, im, kind, s.addr(), env, nil)
	cancel()
	if err != nil {
		stream.err, ping.err = err, err
		return stream, ping
	}
	defer l.stop()
	var rates []float64
	for range max(o.repeat, 1) {
		tctx, cancel := context.WithTimeout(ctx, 3*o.streamDur+60*time.Second)
		rawOnce(tctx)
		n, el, err := tcpTransfer(tctx, s, l.tcpServer, o.streamBytes, o.streamDur)
		cancel()
		if err != nil {
			stream.err = fmt.Errorf("%s %s: %w", im.name, kind, err)
			break
		}
		rates = append(rates, rate(n, el))
	}
	if stream.err == nil {
		stream.v, stream.text = spread(rates)
	}
	pctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	_, _ = ctlPingSamples(pctx, l.ctl1, "node3", 10) // warm up
	samples, err := ctlPingSamples(pctx, l.ctl1, "node3", o.pingSamples)
	if err != nil {
		ping.err = fmt.Errorf("%s %s: %w", im.name, kind, err)
		return stream, ping
	}
	med := percentile(samples, 50)
	ping.v = med.Seconds()
	ping.text = ms(med) + " / " + ms(percentile(samples, 99))
	o.logger.Debug("links", "impl", im.name, "kind", kind, "stream", stream.text, "ping", ping.text,
		"rates", strings.Trim(fmt.Sprint(rates), "[]"))
	return stream, ping
}
