package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"

	"github.com/receptor-mesh/receptor/services/meshclient"
	"google.golang.org/grpc"
)

// mesh3 is the line node1 — node2 — node3 of real processes over TCP
// backends. node1 and node3 run the all-in-one binary (work types echo and
// bigout); node2 is a bare router. node1 has tcp-servers into the mesh
// toward service "sink" on node2 (1 hop) and node3 (2 hops); both of those
// run a tcp-client to the driver's local sink.
type mesh3 struct {
	nodes          []*proc
	tcpServer1Hop  string // local address of node1's tcp-server → node2
	tcpServer2Hops string // local address of node1's tcp-server → node3
	grpc1, grpc3   *grpc.ClientConn
	ctl1           string // node1 control socket path
	mesh1          *meshclient.Client
	bigFile        string
	bigSize        int64
}

type mesh3Config struct {
	binDir   string
	dir      string
	sinkAddr string
	bigFile  string // output of the bigout work type
	env      []string
	logger   *slog.Logger
}

func startMesh3(ctx context.Context, ps *ports, c mesh3Config) (*mesh3, error) {
	m := &mesh3{bigFile: c.bigFile}
	fi, err := os.Stat(c.bigFile)
	if err != nil {
		return nil, fmt.Errorf("bigout file: %w", err)
	}
	m.bigSize = fi.Size()
	var p [8]int
	for i := range p {
		if p[i], err = ps.next(); err != nil {
			return nil, err
		}
	}
	port := func(i int) string { return strconv.Itoa(p[i]) }
	addr := func(i int) string { return "127.0.0.1:" + port(i) }
	m.tcpServer1Hop, m.tcpServer2Hops = addr(2), addr(3)
	path := func(name string) string { return filepath.Join(c.dir, name) }
	m.ctl1 = path("n1.sock")
	work := []string{
		"--work-command", "worktype=echo", "command=cat",
		"--work-command", "worktype=bigout", "command=cat", "params=" + c.bigFile,
	}
	specs := []struct {
		id, bin string
		args    []string
	}{
		{"node1", "receptor", append([]string{
			"--node", "id=node1", "datadir=" + path("n1data"),
			"--tcp-listener", "port=" + port(0), "bindaddr=127.0.0.1",
			"--control-service", "service=control", "filename=" + m.ctl1,
			"--grpc-server", "filename=" + path("n1g.sock"),
			"--tcp-server", "port=" + port(2), "bindaddr=127.0.0.1", "remotenode=node2", "remoteservice=sink",
			"--tcp-server", "port=" + port(3), "bindaddr=127.0.0.1", "remotenode=node3", "remoteservice=sink",
		}, work...)},
		{"node2", "receptor-router", []string{
			"--node", "id=node2", "datadir=" + path("n2data"),
			"--tcp-peer", "address=" + addr(0),
			"--tcp-listener", "port=" + port(1), "bindaddr=127.0.0.1",
			"--control-service", "service=control", "filename=" + path("n2.sock"),
			"--tcp-client", "service=sink", "address=" + c.sinkAddr,
		}},
		{"node3", "receptor", append([]string{
			"--node", "id=node3", "datadir=" + path("n3data"),
			"--tcp-peer", "address=" + addr(1),
			"--control-service", "service=control", "filename=" + path("n3.sock"),
			"--grpc-server", "filename=" + path("n3g.sock"),
			"--tcp-client", "service=sink", "address=" + c.sinkAddr,
		}, work...)},
	}
	for _, s := range specs {
		pr, err := startProc(c.logger, filepath.Join(c.binDir, s.bin), s.id, c.dir, s.args, c.env)
		if err != nil {
			m.stop()
			return nil, err
		}
		m.nodes = append(m.nodes, pr)
	}
	if m.grpc1, err = grpcUnix(path("n1g.sock")); err != nil {
		m.stop()
		return nil, err
	}
	if m.grpc3, err = grpcUnix(path("n3g.sock")); err != nil {
		m.stop()
		return nil, err
	}
	m.mesh1 = meshclient.New(m.grpc1)
	mesh3c := meshclient.New(m.grpc3)
	// Ready when node1 routes to both others, node3 routes back, and
	// node3's control service is advertised (remote work needs it).
	ready := func(ctx context.Context) bool {
		s1, err := m.mesh1.Status(ctx)
		if err != nil || s1.GetRoutingTable()["node3"] == "" || s1.GetRoutingTable()["node2"] == "" {
			return false
		}
		s3, err := mesh3c.Status(ctx)
		return err == nil && s3.GetRoutingTable()["node1"] != ""
	}
	if err := waitFor(ctx, "3-node mesh routes", m.nodes[0], ready); err != nil {
		m.stop()
		return nil, err
	}
	return m, nil
}

func (m *mesh3) stop() {
	for _, cc := range []*grpc.ClientConn{m.grpc1, m.grpc3} {
		if cc != nil {
			_ = cc.Close()
		}
	}
	for i := len(m.nodes) - 1; i >= 0; i-- {
		m.nodes[i].stop()
	}
}
