package router

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"runtime"
	"slices"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	meshv1 "github.com/receptor-mesh/receptor/gen/go/receptor/mesh/v1"
	"github.com/receptor-mesh/receptor/services/testkit"
)

// TestMeshService exercises every MeshService RPC over the grpc-server unix
// socket of routers in a line a - b - c connected by TCP.
func TestMeshService(t *testing.T) {
	a, b, c := line(t)
	ctx := testCtx(t)

	t.Run("GetStatus", func(t *testing.T) {
		resp, err := b.mesh.GetStatus(ctx, &meshv1.GetStatusRequest{})
		if err != nil {
			t.Fatal(err)
		}
		st := resp.GetStatus()
		if st.GetNodeId() != "b" {
			t.Errorf("node_id = %q, want b", st.GetNodeId())
		}
		var conns []string
		for _, cn := range st.GetConnections() {
			conns = append(conns, cn.GetNodeId())
			if cn.GetCost() != 1 {
				t.Errorf("connection %s cost = %v, want 1", cn.GetNodeId(), cn.GetCost())
			}
		}
		if !slices.Equal(conns, []string{"a", "c"}) {
			t.Errorf("connections = %v, want [a c]", conns)
		}
		if rt := st.GetRoutingTable(); rt["a"] != "a" || rt["c"] != "c" || len(rt) != 2 {
			t.Errorf("routing table = %v, want a→a, c→c", rt)
		}
		if st.GetSystemCpuCount() < 1 || st.GetSystemMemoryMib() < 1 {
			t.Errorf("system = %d CPUs, %d MiB", st.GetSystemCpuCount(), st.GetSystemMemoryMib())
		}
		if st.GetWork().GetAttached() {
			t.Error("work agent reported attached on a router without one")
		}
		// a's routing table goes through b to c.
		resp, err = a.mesh.GetStatus(ctx, &meshv1.GetStatusRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if got := resp.GetStatus().GetRoutingTable()["c"]; got != "b" {
			t.Errorf("a routes c via %q, want b", got)
		}
		if kc := resp.GetStatus().GetKnownConnectionCosts(); len(kc) != 3 {
			t.Errorf("a knows costs of %d nodes, want 3: %v", len(kc), kc)
		}
		// Every node's control service is advertised, and reaches a.
		testkit.Eventually(t, bound, "control ads at a", func() error {
			resp, err := a.mesh.GetStatus(ctx, &meshv1.GetStatusRequest{})
			if err != nil {
				return err
			}
			var ctl []string
			for _, ad := range resp.GetStatus().GetAdvertisements() {
				if ad.GetService() == "control" {
					if ad.GetTags()["type"] != "Control Service" || ad.GetConnectionType() != meshv1.ConnectionType_CONNECTION_TYPE_STREAM {
						return fmt.Errorf("control ad of %s = %v", ad.GetNodeId(), ad)
					}
					ctl = append(ctl, ad.GetNodeId())
				}
			}
			if !slices.Equal(ctl, []string{"a", "b", "c"}) {
				return fmt.Errorf("control ads from %v, want [a b c]", ctl)
			}
			return nil
		})
	})

	t.Run("GetVersion", func(t *testing.T) {
		resp, err := a.mesh.GetVersion(ctx, &meshv1.GetVersionRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if got := resp.GetVersion().GetGoVersion(); got != runtime.Version() {
			t.Errorf("go_version = %q, want %q", got, runtime.Version())
		}
	})

	t.Run("Ping", func(t *testing.T) {
		tests := []struct {
			target, from string
		}{
			{"a", "a"}, {"LocalHost", "a"}, {"b", "b"}, {"c", "c"},
		}
		for _, tt := range tests {
			resp, err := a.mesh.Ping(ctx, &meshv1.PingRequest{Node: tt.target})
			if err != nil {
				t.Errorf("ping %s: %v", tt.target, err)
				continue
			}
			if got := resp.GetResult().GetFromNode(); got != tt.from {
				t.Errorf("ping %s answered by %q, want %q", tt.target, got, tt.from)
			}
			if resp.GetResult().GetRtt().AsDuration() <= 0 {
				t.Errorf("ping %s rtt = %v", tt.target, resp.GetResult().GetRtt())
			}
		}
		_, err := a.mesh.Ping(ctx, &meshv1.PingRequest{Node: "nosuchnode", Timeout: durationpb.New(bound / 4)})
		if status.Code(err) != codes.Unavailable || status.Convert(err).Message() != "no route to node" {
			t.Errorf("ping unknown node: %v, want Unavailable \"no route to node\"", err)
		}
		// One hop is not enough to reach c (two hops away).
		one := uint32(1)
		_, err = a.mesh.Ping(ctx, &meshv1.PingRequest{Node: "c", HopsToLive: &one})
		if err == nil {
			t.Error("ping c with 1 hop to live succeeded")
		}
		big := uint32(31)
		_, err = a.mesh.Ping(ctx, &meshv1.PingRequest{Node: "c", HopsToLive: &big})
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("ping with 31 hops: %v, want InvalidArgument", err)
		}
	})

	t.Run("Traceroute", func(t *testing.T) {
		st, err := a.mesh.Traceroute(ctx, &meshv1.TracerouteRequest{Node: "c"})
		if err != nil {
			t.Fatal(err)
		}
		var hops []string
		for {
			resp, err := st.Recv()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			h := resp.GetHop()
			if h.GetError() != "" {
				t.Errorf("hop %d: error %q", h.GetIndex(), h.GetError())
			}
			if int(h.GetIndex()) != len(hops) {
				t.Errorf("hop index %d at position %d", h.GetIndex(), len(hops))
			}
			hops = append(hops, h.GetFromNode())
		}
		if !slices.Equal(hops, []string{"a", "b", "c"}) {
			t.Errorf("traceroute a→c hops = %v, want [a b c]", hops)
		}
	})

	t.Run("PacketSocket", func(t *testing.T) {
		pctx, cancel := context.WithCancel(ctx)
		defer cancel()
		bind := func(n *node, service string) meshv1.MeshService_PacketSocketClient {
			t.Helper()
			s, err := n.mesh.PacketSocket(pctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Send(&meshv1.PacketSocketRequest{Msg: &meshv1.PacketSocketRequest_Bind{
				Bind: &meshv1.PacketBind{Service: service},
			}}); err != nil {
				t.Fatal(err)
			}
			resp, err := s.Recv()
			if err != nil {
				t.Fatalf("bind %s on %s: %v", service, n.id, err)
			}
			if got := resp.GetBound(); got.GetNode() != n.id || (service != "" && got.GetService() != service) {
				t.Fatalf("bound = %v, want %s:%s", resp, n.id, service)
			}
			return s
		}
		send := func(s meshv1.MeshService_PacketSocketClient, node, service string, data []byte) {
			t.Helper()
			if err := s.Send(&meshv1.PacketSocketRequest{Msg: &meshv1.PacketSocketRequest_Send{
				Send: &meshv1.PacketSend{Node: node, Service: service, Data: data},
			}}); err != nil {
				t.Fatal(err)
			}
		}
		sa := bind(a, "")
		sc := bind(c, "pecho")
		ephemeral := func() string {
			// The ephemeral name of sa, learnt from the packet at c.
			send(sa, "c", "pecho", []byte("hello c"))
			resp, err := sc.Recv()
			if err != nil {
				t.Fatal(err)
			}
			p := resp.GetPacket()
			if p.GetFromNode() != "a" || string(p.GetData()) != "hello c" {
				t.Fatalf("c received %v, want \"hello c\" from a", resp)
			}
			return p.GetFromService()
		}()
		send(sc, "a", ephemeral, []byte("hello a"))
		resp, err := sa.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if p := resp.GetPacket(); p.GetFromNode() != "c" || p.GetFromService() != "pecho" || string(p.GetData()) != "hello a" {
			t.Errorf("a received %v, want \"hello a\" from c:pecho", resp)
		}
		// A datagram to a service nobody bound comes back as a notice.
		send(sa, "c", "nobody", []byte("lost"))
		resp, err = sa.Recv()
		if err != nil {
			t.Fatal(err)
		}
		u := resp.GetUnreachable()
		if u == nil || u.GetProblem() != "service unknown" || u.GetReportedBy() != "c" ||
			u.GetToNode() != "c" || u.GetToService() != "nobody" || u.GetFromNode() != "a" || u.GetFromService() != ephemeral {
			t.Errorf("unreachable notice = %v", resp)
		}
		// A bound name cannot be bound twice.
		dup, err := c.mesh.PacketSocket(pctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := dup.Send(&meshv1.PacketSocketRequest{Msg: &meshv1.PacketSocketRequest_Bind{Bind: &meshv1.PacketBind{Service: "pecho"}}}); err != nil {
			t.Fatal(err)
		}
		if _, err := dup.Recv(); status.Code(err) != codes.AlreadyExists {
			t.Errorf("second bind of pecho: %v, want AlreadyExists", err)
		}
	})

	t.Run("DialListenAccept", func(t *testing.T) {
		lctx, cancel := context.WithCancel(ctx)
		defer cancel()
		ls, err := c.mesh.Listen(lctx, &meshv1.ListenRequest{Service: "secho", Advertise: true, Tags: map[string]string{"k": "v"}})
		if err != nil {
			t.Fatal(err)
		}
		first, err := ls.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if l := first.GetListening(); l.GetNode() != "c" || l.GetService() != "secho" {
			t.Fatalf("first listen response = %v", first)
		}
		echoed := make(chan error, 1)
		go func() { echoed <- acceptEcho(lctx, c, ls, false) }()

		const size = 1 << 20
		payload := make([]byte, size)
		for i := range payload {
			payload[i] = byte(i*7 + i>>8)
		}
		d, err := a.mesh.Dial(lctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Send(&meshv1.DialRequest{Msg: &meshv1.DialRequest_Open{Open: &meshv1.DialOpen{Node: "c", Service: "secho"}}}); err != nil {
			t.Fatal(err)
		}
		resp, err := d.Recv()
		if err != nil {
			t.Fatalf("dial c:secho: %v", err)
		}
		if resp.GetConnected().GetLocalNode() != "a" || resp.GetConnected().GetLocalService() == "" {
			t.Fatalf("first dial response = %v", resp)
		}
		// The Accept side cannot write once the dialer has half-closed (the
		// call ends with the peer's direction), so the dialer half-closes
		// only after the whole echo came back.
		sent := make(chan error, 1)
		go func() {
			for off := 0; off < size; off += 100 << 10 {
				end := min(off+100<<10, size)
				if err := d.Send(&meshv1.DialRequest{Msg: &meshv1.DialRequest_Data{Data: payload[off:end]}}); err != nil {
					sent <- err
					return
				}
			}
			sent <- nil
		}()
		var got bytes.Buffer
		for got.Len() < size {
			resp, err := d.Recv()
			if err != nil {
				t.Fatalf("dial recv after %d bytes: %v", got.Len(), err)
			}
			if len(resp.GetData()) > 64<<10 {
				t.Errorf("chunk of %d bytes exceeds 64 KiB", len(resp.GetData()))
			}
			got.Write(resp.GetData())
		}
		if err := <-sent; err != nil {
			t.Fatalf("sending: %v", err)
		}
		if got.Len() != size || sha256.Sum256(got.Bytes()) != sha256.Sum256(payload) {
			t.Fatalf("echoed %d bytes, differing from the %d sent", got.Len(), size)
		}
		// Half-close: the echo side sees EOF and the call ends with OK.
		if err := d.CloseSend(); err != nil {
			t.Fatal(err)
		}
		if resp, err := d.Recv(); err != io.EOF {
			t.Fatalf("after half-close: %v, %v; want EOF", resp, err)
		}
		if err := <-echoed; err != nil {
			t.Fatalf("echo side: %v", err)
		}

		// The advertisement reaches a with its tags.
		testkit.Eventually(t, bound, "secho ad at a", func() error {
			resp, err := a.mesh.GetStatus(ctx, &meshv1.GetStatusRequest{})
			if err != nil {
				return err
			}
			for _, ad := range resp.GetStatus().GetAdvertisements() {
				if ad.GetNodeId() == "c" && ad.GetService() == "secho" && ad.GetTags()["k"] == "v" {
					return nil
				}
			}
			return fmt.Errorf("no secho ad from c")
		})

		// Unknown connection IDs and unknown TLS names are refused.
		acc, err := c.mesh.Accept(lctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := acc.Send(&meshv1.AcceptRequest{Msg: &meshv1.AcceptRequest_Open{Open: &meshv1.AcceptOpen{ConnectionId: "nope"}}}); err != nil {
			t.Fatal(err)
		}
		if _, err := acc.Recv(); status.Code(err) != codes.NotFound {
			t.Errorf("accept of unknown connection: %v, want NotFound", err)
		}
		d2, err := a.mesh.Dial(lctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := d2.Send(&meshv1.DialRequest{Msg: &meshv1.DialRequest_Open{Open: &meshv1.DialOpen{Node: "c", Service: "secho", TlsClient: "nosuch"}}}); err != nil {
			t.Fatal(err)
		}
		if _, err := d2.Recv(); status.Code(err) != codes.NotFound || status.Convert(err).Message() != "unknown TLS config nosuch" {
			t.Errorf("dial with unknown TLS config: %v", err)
		}
	})

	t.Run("SetWorkCommands", func(t *testing.T) {
		want := []*meshv1.WorkCommand{{WorkType: "alpha"}, {WorkType: "beta", Secure: true}}
		if _, err := b.mesh.SetWorkCommands(ctx, &meshv1.SetWorkCommandsRequest{WorkCommands: want}); err != nil {
			t.Fatal(err)
		}
		// b's control ad carries them, locally and as seen from a and c.
		for _, n := range []*node{b, a, c} {
			testkit.Eventually(t, bound, "work commands of b's control ad at "+n.id, func() error {
				return checkControlAd(ctx, n, "b", want)
			})
		}
		// An empty list clears them.
		if _, err := b.mesh.SetWorkCommands(ctx, &meshv1.SetWorkCommandsRequest{}); err != nil {
			t.Fatal(err)
		}
		testkit.Eventually(t, bound, "cleared work commands at a", func() error { return checkControlAd(ctx, a, "b", nil) })
		_, err := b.mesh.SetWorkCommands(ctx, &meshv1.SetWorkCommandsRequest{WorkCommands: []*meshv1.WorkCommand{{}}})
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("empty work type: %v, want InvalidArgument", err)
		}
	})
}

// checkControlAd checks the work commands of owner's control-service ad
// as n sees it.
func checkControlAd(ctx context.Context, n *node, owner string, want []*meshv1.WorkCommand) error {
	resp, err := n.mesh.GetStatus(ctx, &meshv1.GetStatusRequest{})
	if err != nil {
		return err
	}
	for _, ad := range resp.GetStatus().GetAdvertisements() {
		if ad.GetNodeId() != owner || ad.GetService() != "control" {
			continue
		}
		got := ad.GetWorkCommands()
		if len(got) != len(want) {
			return fmt.Errorf("work commands %v, want %v", got, want)
		}
		for i := range got {
			if got[i].GetWorkType() != want[i].GetWorkType() || got[i].GetSecure() != want[i].GetSecure() {
				return fmt.Errorf("work commands %v, want %v", got, want)
			}
		}
		return nil
	}
	return fmt.Errorf("no control ad of %s", owner)
}

// acceptEcho takes the next connection announced on ls over an Accept
// call of n and echoes it until the remote end half-closes, then closes.
// With halfClose, the Accept call uses the half-close contract: the router
// reports the dialer's EOF with an eof message and the call stays open for
// the rest of the echo until we close our side too.
func acceptEcho(ctx context.Context, n *node, ls meshv1.MeshService_ListenClient, halfClose bool) error {
	ev, err := ls.Recv()
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	inc := ev.GetIncoming()
	if inc == nil || inc.GetRemoteNode() != "a" {
		return fmt.Errorf("listen event %v, want incoming from a", ev)
	}
	acc, err := n.mesh.Accept(ctx)
	if err != nil {
		return err
	}
	if err := acc.Send(&meshv1.AcceptRequest{Msg: &meshv1.AcceptRequest_Open{Open: &meshv1.AcceptOpen{ConnectionId: inc.GetConnectionId(), HalfClose: halfClose}}}); err != nil {
		return err
	}
	resp, err := acc.Recv()
	if err != nil {
		return fmt.Errorf("accept: %w", err)
	}
	if resp.GetAccepted().GetRemoteNode() != "a" || resp.GetAccepted().GetRemoteService() != inc.GetRemoteService() {
		return fmt.Errorf("accepted = %v for %v", resp, inc)
	}
	for {
		resp, err := acc.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("accept recv: %w", err)
		}
		if resp.GetEof() != nil {
			// Everything is echoed: close our direction, then the call ends.
			if err := acc.CloseSend(); err != nil {
				return err
			}
			if _, err := acc.Recv(); err != io.EOF {
				return fmt.Errorf("after eof: %v, want the call to end", err)
			}
			return nil
		}
		if err := acc.Send(&meshv1.AcceptRequest{Msg: &meshv1.AcceptRequest_Data{Data: resp.GetData()}}); err != nil {
			return fmt.Errorf("accept send: %w", err)
		}
	}
	// The call ended with the dialer's half-close.
	return acc.CloseSend()
}

// TestPingUnknownNode checks upstream's verified answer to a ping of a node
// without a route (docs/protocol.md §12.3): at once, "no route
// to node", which the API reports as Unavailable.
func TestPingUnknownNode(t *testing.T) {
	a := startNode(t, nodeSpec{id: "a"})
	ctx := testCtx(t)
	_, err := a.mesh.Ping(ctx, &meshv1.PingRequest{Node: "nosuchnode", Timeout: durationpb.New(bound / 4)})
	if status.Code(err) != codes.Unavailable || status.Convert(err).Message() != "no route to node" {
		t.Errorf("ping unknown node: %v, want Unavailable \"no route to node\"", err)
	}
}

// TestDialHalfCloseEcho sends 1 MiB and half-closes at once, as a net.Conn
// client of a TCP-like echo service would; the echo must come back whole.
//
// Both calls use the half-close contract (half_close in the open
// messages): without it an Accept call ends at the dialer's EOF.
func TestDialHalfCloseEcho(t *testing.T) {
	a := startNode(t, nodeSpec{id: "a", listen: true})
	c := startNode(t, nodeSpec{id: "c", peers: []int{a.port}})
	waitRoutes(t, a, "c")
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	ls, err := c.mesh.Listen(ctx, &meshv1.ListenRequest{Service: "echo"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ls.Recv(); err != nil {
		t.Fatal(err)
	}
	echoed := make(chan error, 1)
	go func() { echoed <- acceptEcho(ctx, c, ls, true) }()
	d, err := a.mesh.Dial(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Send(&meshv1.DialRequest{Msg: &meshv1.DialRequest_Open{Open: &meshv1.DialOpen{Node: "c", Service: "echo", HalfClose: true}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Recv(); err != nil {
		t.Fatal(err)
	}
	payload := bytes.Repeat([]byte("half-close echo\n"), 1<<16)
	for off := 0; off < len(payload); off += 64 << 10 {
		if err := d.Send(&meshv1.DialRequest{Msg: &meshv1.DialRequest_Data{Data: payload[off : off+64<<10]}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.CloseSend(); err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	for {
		resp, err := d.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("after %d bytes: %v", got.Len(), err)
		}
		got.Write(resp.GetData())
	}
	if err := <-echoed; err != nil {
		t.Errorf("echo side: %v", err)
	}
	if !bytes.Equal(got.Bytes(), payload) {
		t.Errorf("echoed %d bytes of %d", got.Len(), len(payload))
	}
}
