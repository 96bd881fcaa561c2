package mesh_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/receptor-mesh/receptor/services/mesh"
	"github.com/receptor-mesh/receptor/services/mesh/backends/memory"
	"github.com/receptor-mesh/receptor/services/mesh/stream"
)

// waitForRoute polls n's routing table until it has a route to peer, or
// ctx ends. Sessions and routes come up asynchronously after AddBackend.
func waitForRoute(ctx context.Context, n *mesh.Node, peer string) error {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if _, ok := n.Status().RoutingTable[peer]; ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no route from %s to %s: %w", n.NodeID(), peer, ctx.Err())
		case <-tick.C:
		}
	}
}

// Two mesh nodes in one process, linked by the in-process memory backend
// (backends.NewTCPListener / NewTCPDialer and friends link real nodes the
// same way). Node b sends a datagram to a service on node a, then opens a
// stream to another service on a and reads back the line a echoes.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	quiet := slog.New(slog.DiscardHandler)

	a, err := mesh.New(mesh.Options{NodeID: "a", Logger: quiet})
	if err != nil {
		panic(err)
	}
	defer a.Close()
	b, err := mesh.New(mesh.Options{NodeID: "b", Logger: quiet})
	if err != nil {
		panic(err)
	}
	defer b.Close()

	// a listens on the in-process network under the name "a"; b dials it
	// (and would redial if the session dropped).
	links := memory.NewNetwork(0)
	if err := a.AddBackend(links.Listener("a"), mesh.BackendOptions{Cost: 1}); err != nil {
		panic(err)
	}
	if err := b.AddBackend(links.Dialer("a", memory.DialerOptions{}), mesh.BackendOptions{Cost: 1}); err != nil {
		panic(err)
	}
	for _, hop := range [][2]*mesh.Node{{a, b}, {b, a}} {
		if err := waitForRoute(ctx, hop[0], hop[1].NodeID()); err != nil {
			panic(err)
		}
	}

	// Datagrams: a mesh.PacketConn is a net.PacketConn whose addresses are
	// mesh.Addr values ("node:service").
	inbox, err := a.ListenPacket("inbox")
	if err != nil {
		panic(err)
	}
	defer inbox.Close()
	outbox, err := b.ListenPacket("") // "" binds an ephemeral service
	if err != nil {
		panic(err)
	}
	defer outbox.Close()
	if _, err := outbox.WriteTo([]byte("hello, a"), mesh.Addr{Node: "a", Service: "inbox"}); err != nil {
		panic(err)
	}
	if err := inbox.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		panic(err)
	}
	buf := make([]byte, 1024)
	n, from, err := inbox.ReadFrom(buf)
	if err != nil {
		panic(err)
	}
	fmt.Printf("datagram from node %s: %s\n", from.(mesh.Addr).Node, buf[:n])

	// Streams: QUIC over mesh datagrams, as net.Listener and net.Conn.
	ln, err := stream.Listen(ctx, a, "echo", stream.ListenOptions{Advertise: true, Logger: quiet})
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	served := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			served <- err
			return
		}
		defer c.Close()
		line, err := bufio.NewReader(c).ReadString('\n')
		if err == nil {
			_, err = io.WriteString(c, "echo: "+line)
		}
		served <- err
	}()

	c, err := stream.DialConn(ctx, b, "a", "echo", stream.DialOptions{Logger: quiet})
	if err != nil {
		panic(err)
	}
	if _, err := io.WriteString(c, "hello over a stream\n"); err != nil {
		panic(err)
	}
	reply, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		panic(err)
	}
	fmt.Print(reply)
	if err := <-served; err != nil {
		panic(err)
	}
	// Close sends our FIN; the dialer then tears the QUIC connection down
	// once the peer has everything, and Wait returns when that is done.
	c.Close()
	if err := c.Wait(ctx); err != nil {
		panic(err)
	}

	// Output:
	// datagram from node b: hello, a
	// echo: hello over a stream
}
