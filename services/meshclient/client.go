// Package meshclient is the Go client of MeshService: mesh applications
// (the work agent among them) use it to reach the mesh through a router,
// with net.Conn, net.Listener and net.PacketConn values whose addresses are
// mesh.Addr, plus status, ping, traceroute and the advertised work commands.
//
// As a library: connect to a router's grpc-server entity with
// grpcserve.Dial("unix:///path/to/socket", nil) (or any grpc.ClientConn),
// wrap it with New, then Dial a node's service, Listen on a service of the
// router's node, or ListenPacket for datagrams. A unix-socket caller is
// admin unless the router's access entities say otherwise; over TCP the
// router requires a client certificate. ExampleClient_Dial runs a router
// in-process and exchanges a line through it.
package meshclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	meshv1 "github.com/receptor-mesh/receptor/gen/go/receptor/mesh/v1"
	"github.com/receptor-mesh/receptor/services/mesh"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/durationpb"
)

// Client calls MeshService over one gRPC connection.
type Client struct {
	mc meshv1.MeshServiceClient
}

// New returns a Client over conn (a *grpc.ClientConn or any other
// connection interface).
func New(conn grpc.ClientConnInterface) *Client {
	return &Client{mc: meshv1.NewMeshServiceClient(conn)}
}

// DialOptions configure Dial.
type DialOptions struct {
	// TLSClient names a tls-client configuration on the router for a
	// service with application TLS; empty means the mesh's built-in TLS.
	TLSClient string
}

// Dial connects to service on node ("localhost" is the router's node).
// ctx bounds the connection setup only. The returned net.Conn is a *Conn.
func (c *Client) Dial(ctx context.Context, node, service string, opts DialOptions) (net.Conn, error) {
	conn, err := c.DialConn(ctx, node, service, opts)
	if err != nil {
		return nil, err
	}
	return conn, nil
}

// DialConn is Dial returning the concrete *Conn.
func (c *Client) DialConn(ctx context.Context, node, service string, opts DialOptions) (*Conn, error) {
	remote := mesh.Addr{Node: node, Service: service}
	fail := func(err error) (*Conn, error) { return nil, fmt.Errorf("meshclient: dial %s: %w", remote, err) }
	cctx, cancel, setupDone := callContext(ctx)
	s, err := c.mc.Dial(cctx)
	if err != nil {
		cancel()
		return fail(setupErr(ctx, err))
	}
	if err := s.Send(&meshv1.DialRequest{Msg: &meshv1.DialRequest_Open{Open: &meshv1.DialOpen{
		Node: node, Service: service, TlsClient: opts.TLSClient, HalfClose: true,
	}}}); err != nil {
		_, rerr := s.Recv() // the status behind the failed send
		cancel()
		return fail(setupErr(ctx, firstErr(rerr, err)))
	}
	resp, err := s.Recv()
	if err == nil && resp.GetConnected() == nil {
		err = errors.New("router did not answer with connected")
	}
	if err != nil || !setupDone() {
		cancel()
		return fail(setupErr(ctx, err))
	}
	local := mesh.Addr{Node: resp.GetConnected().GetLocalNode(), Service: resp.GetConnected().GetLocalService()}
	return newConn(newDialCall(s), cancel, local, remote), nil
}

// Status returns the router's node status.
func (c *Client) Status(ctx context.Context) (*meshv1.NodeStatus, error) {
	resp, err := c.mc.GetStatus(ctx, &meshv1.GetStatusRequest{})
	if err != nil {
		return nil, fmt.Errorf("meshclient: status: %w", err)
	}
	return resp.GetStatus(), nil
}

// Version returns the router's build information.
func (c *Client) Version(ctx context.Context) (*meshv1.VersionInfo, error) {
	resp, err := c.mc.GetVersion(ctx, &meshv1.GetVersionRequest{})
	if err != nil {
		return nil, fmt.Errorf("meshclient: version: %w", err)
	}
	return resp.GetVersion(), nil
}

// PingOptions configure Ping; zero values mean the router's defaults.
type PingOptions struct {
	HopsToLive *uint32       // nil: 30
	Timeout    time.Duration // 0: 10 s; at most 60 s
}

// Ping pings node once. Failures are gRPC statuses with the upstream text
// ("timeout", "no route to node", ...); see apierr.Text.
func (c *Client) Ping(ctx context.Context, node string, opts PingOptions) (mesh.PingResult, error) {
	req := &meshv1.PingRequest{Node: node, HopsToLive: opts.HopsToLive}
	if opts.Timeout > 0 {
		req.Timeout = durationpb.New(opts.Timeout)
	}
	resp, err := c.mc.Ping(ctx, req)
	if err != nil {
		return mesh.PingResult{}, fmt.Errorf("meshclient: ping %s: %w", node, err)
	}
	return mesh.PingResult{From: resp.GetResult().GetFromNode(), RTT: resp.GetResult().GetRtt().AsDuration()}, nil
}

// Traceroute traces the path to node; each hop's Err carries the probe's
// error text, if any (the last hop of a failed trace).
func (c *Client) Traceroute(ctx context.Context, node string) ([]mesh.TracerouteHop, error) {
	s, err := c.mc.Traceroute(ctx, &meshv1.TracerouteRequest{Node: node})
	if err != nil {
		return nil, fmt.Errorf("meshclient: traceroute %s: %w", node, err)
	}
	var hops []mesh.TracerouteHop
	for {
		resp, err := s.Recv()
		if errors.Is(err, io.EOF) {
			return hops, nil
		}
		if err != nil {
			return hops, fmt.Errorf("meshclient: traceroute %s: %w", node, err)
		}
		h := resp.GetHop()
		hop := mesh.TracerouteHop{Hop: int(h.GetIndex()), From: h.GetFromNode(), RTT: h.GetRtt().AsDuration()}
		if h.GetError() != "" {
			hop.Err = errors.New(h.GetError())
		}
		hops = append(hops, hop)
	}
}

// SetWorkCommands replaces the work types the router's node advertises.
func (c *Client) SetWorkCommands(ctx context.Context, cmds []mesh.WorkCommand) error {
	req := &meshv1.SetWorkCommandsRequest{WorkCommands: make([]*meshv1.WorkCommand, 0, len(cmds))}
	for _, wc := range cmds {
		req.WorkCommands = append(req.WorkCommands, &meshv1.WorkCommand{WorkType: wc.WorkType, Secure: wc.Secure})
	}
	if _, err := c.mc.SetWorkCommands(ctx, req); err != nil {
		return fmt.Errorf("meshclient: set work commands: %w", err)
	}
	return nil
}

// callContext returns the context of a long-lived call: it keeps ctx's
// values but not its end, except during setup. setupDone detaches the call
// from ctx and reports whether ctx was still live.
func callContext(ctx context.Context) (cctx context.Context, cancel context.CancelFunc, setupDone func() bool) {
	cctx, cancel = context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, cancel)
	return cctx, cancel, stop
}

// setupErr prefers ctx's own error when ctx ended the setup.
func setupErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	return err
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil && !errors.Is(err, io.EOF) {
			return err
		}
	}
	return errors.Join(errs...)
}
