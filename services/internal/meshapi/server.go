// Package meshapi serves MeshService (proto receptor.mesh.v1) over a mesh
// node: status, ping, traceroute, datagram sockets, stream dial/listen/accept
// and the advertised work commands. It translates between gRPC calls and the
// node's Go API; the mesh logic itself lives in services/mesh.
package meshapi

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	meshv1 "github.com/receptor-mesh/receptor/gen/go/receptor/mesh/v1"
	"github.com/receptor-mesh/receptor/services/internal/apierr"
	"github.com/receptor-mesh/receptor/services/internal/hostmem"
	"github.com/receptor-mesh/receptor/services/mesh"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Bounds of the MeshService contract (proto/README.md).
const (
	MaxDatagram          = 65499   // largest datagram payload
	MaxChunkIn           = 1 << 20 // largest stream chunk a client may send
	MaxChunkOut          = 64 << 10
	MaxWorkCommands      = 1024
	DefaultPacketQueue   = 256 // received datagrams queued per socket toward the client
	DefaultMaxUnaccepted = 64  // incoming connections waiting for Accept, per listener
	DefaultAcceptTimeout = 30 * time.Second
	DefaultPingTimeout   = 10 * time.Second
	MaxPingTimeout       = 60 * time.Second
	maxHops              = 30
	maxServiceLen        = 8
)

// Node is the part of a mesh node the API needs; *mesh.Node implements it.
type Node interface {
	mesh.PacketNetwork
	Status() mesh.Status
	PingHops(ctx context.Context, node string, hops byte) (mesh.PingResult, error)
	// Traceroute sends one hop per probe and closes the channel at the end
	// of the trace or when ctx ends.
	Traceroute(ctx context.Context, node string) <-chan mesh.TracerouteHop
}

// WorkCommandSetter applies the work commands to the node's control-service
// advertisements.
type WorkCommandSetter interface {
	SetWorkCommands(cmds []mesh.WorkCommand)
}

// Options configure a Server. Node is required.
type Options struct {
	Node Node
	// Streams dials and listens for mesh streams; nil means MeshStreams over
	// Node (package services/mesh/stream).
	Streams Streams
	// TLSClient and TLSServer look up named tls-client / tls-server
	// configurations (tlsconf.Store.Client / Server). Nil means no names
	// are known. The dial side adds the node-ID check for the target itself.
	TLSClient func(name string) (*tls.Config, error)
	TLSServer func(name string) (*tls.Config, error)
	// WorkStatus reports the attached work agent for GetStatus; nil means
	// this router runs no work.
	WorkStatus func(ctx context.Context) (*meshv1.WorkAgentStatus, error)
	// WorkCommands receives SetWorkCommands lists; nil means Node is used
	// when it implements WorkCommandSetter, otherwise the list is only
	// stored (see Server.WorkCommands).
	WorkCommands WorkCommandSetter
	// Version is reported by GetVersion and GetStatus.
	Version *meshv1.VersionInfo
	Logger  *slog.Logger

	// Limits; zero means the default constant of the same name.
	PacketQueue   int
	MaxUnaccepted int
	AcceptTimeout time.Duration
}

// Server implements meshv1.MeshServiceServer.
type Server struct {
	meshv1.UnimplementedMeshServiceServer

	node    Node
	streams Streams
	opts    Options
	log     *slog.Logger
	parked  *parking

	droppedPackets atomic.Uint64

	wcMu         sync.Mutex
	workCommands []mesh.WorkCommand
}

var _ meshv1.MeshServiceServer = (*Server)(nil)

// New returns a Server over opts.Node.
func New(opts Options) (*Server, error) {
	if opts.Node == nil {
		return nil, errors.New("meshapi: Options.Node is required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Streams == nil {
		opts.Streams = MeshStreams(opts.Node, opts.Logger)
	}
	if opts.WorkCommands == nil {
		if s, ok := opts.Node.(WorkCommandSetter); ok {
			opts.WorkCommands = s
		}
	}
	if opts.Version == nil {
		opts.Version = &meshv1.VersionInfo{GoVersion: runtime.Version()}
	}
	if opts.PacketQueue <= 0 {
		opts.PacketQueue = DefaultPacketQueue
	}
	if opts.MaxUnaccepted <= 0 {
		opts.MaxUnaccepted = DefaultMaxUnaccepted
	}
	if opts.AcceptTimeout <= 0 {
		opts.AcceptTimeout = DefaultAcceptTimeout
	}
	return &Server{
		node: opts.Node, streams: opts.Streams, opts: opts, log: opts.Logger,
		parked: newParking(),
	}, nil
}

// DroppedPackets counts datagrams dropped because a PacketSocket client
// read too slowly.
func (s *Server) DroppedPackets() uint64 { return s.droppedPackets.Load() }

// WorkCommands returns the list last set with SetWorkCommands.
func (s *Server) WorkCommands() []mesh.WorkCommand {
	s.wcMu.Lock()
	defer s.wcMu.Unlock()
	return slices.Clone(s.workCommands)
}

// GetStatus implements MeshService.
func (s *Server) GetStatus(ctx context.Context, _ *meshv1.GetStatusRequest) (*meshv1.GetStatusResponse, error) {
	st := StatusProto(s.node.Status())
	st.Version = s.opts.Version.GetVersion()
	st.SystemCpuCount = int64(runtime.NumCPU())
	st.SystemMemoryMib = hostmem.TotalMiB()
	if s.opts.WorkStatus != nil {
		w, err := s.opts.WorkStatus(ctx)
		if err != nil {
			s.log.Debug("meshapi: work agent status unavailable", "err", err)
			w = &meshv1.WorkAgentStatus{Attached: false}
		}
		st.Work = w
	}
	return &meshv1.GetStatusResponse{Status: st}, nil
}

// GetVersion implements MeshService.
func (s *Server) GetVersion(context.Context, *meshv1.GetVersionRequest) (*meshv1.GetVersionResponse, error) {
	return &meshv1.GetVersionResponse{Version: s.opts.Version}, nil
}

// SetWorkCommands implements MeshService.
func (s *Server) SetWorkCommands(_ context.Context, req *meshv1.SetWorkCommandsRequest) (*meshv1.SetWorkCommandsResponse, error) {
	in := req.GetWorkCommands()
	if len(in) > MaxWorkCommands {
		return nil, apierr.InvalidArgument("work_commands", fmt.Sprintf("%d entries exceeds the limit of %d", len(in), MaxWorkCommands))
	}
	cmds := make([]mesh.WorkCommand, 0, len(in))
	for i, wc := range in {
		if wc.GetWorkType() == "" {
			return nil, apierr.InvalidArgument(fmt.Sprintf("work_commands[%d].work_type", i), "must not be empty")
		}
		cmds = append(cmds, mesh.WorkCommand{WorkType: wc.GetWorkType(), Secure: wc.GetSecure()})
	}
	s.wcMu.Lock()
	s.workCommands = cmds
	// Applied under the lock so that concurrent calls reach the node in
	// the order they were stored.
	if s.opts.WorkCommands != nil {
		s.opts.WorkCommands.SetWorkCommands(slices.Clone(cmds))
	}
	s.wcMu.Unlock()
	return &meshv1.SetWorkCommandsResponse{}, nil
}

// StatusProto converts the node's status to its API form (without the
// version, system and work fields, which the node does not know).
func StatusProto(st mesh.Status) *meshv1.NodeStatus {
	out := &meshv1.NodeStatus{
		NodeId:               st.NodeID,
		RoutingTable:         st.RoutingTable,
		KnownConnectionCosts: make(map[string]*meshv1.ConnectionCosts, len(st.KnownConnectionCosts)),
	}
	for _, c := range st.Connections {
		conn := &meshv1.Connection{NodeId: c.NodeID, Cost: c.Cost}
		if c.Health.Peer != "" {
			conn.Health = LinkProto(c.Health)
		}
		out.Connections = append(out.Connections, conn)
	}
	for node, costs := range st.KnownConnectionCosts {
		out.KnownConnectionCosts[node] = &meshv1.ConnectionCosts{Costs: costs}
	}
	for _, a := range st.Advertisements {
		out.Advertisements = append(out.Advertisements, AdProto(a))
	}
	return out
}

// AdProto converts one advertisement.
func AdProto(a mesh.Advertisement) *meshv1.Advertisement {
	ad := &meshv1.Advertisement{
		NodeId:         a.NodeID,
		Service:        a.Service,
		Time:           timestamppb.New(a.Time),
		ConnectionType: ConnTypeProto(a.ConnType),
		Tags:           a.Tags,
	}
	for _, wc := range a.WorkCommands {
		ad.WorkCommands = append(ad.WorkCommands, &meshv1.WorkCommand{WorkType: wc.WorkType, Secure: wc.Secure})
	}
	return ad
}

// LinkProto converts one link's figures.
func LinkProto(l mesh.LinkStats) *meshv1.LinkHealth {
	h := &meshv1.LinkHealth{
		Peer: l.Peer, BackendKind: l.Kind, Backend: l.Backend, Direction: l.Direction, Up: l.Up, Cost: l.Cost,
		BytesIn: l.BytesIn, BytesOut: l.BytesOut, MessagesIn: l.MessagesIn, MessagesOut: l.MessagesOut,
		QueuedMessages: int64(l.QueuedMessages), QueuedBytes: l.QueuedBytes, Drops: l.Drops, Redials: l.Redials,
		IdleTeardowns: l.IdleTeardowns, TlsPeerNodeIds: l.PeerIdentity, RemoteAddress: l.RemoteAddr,
	}
	if !l.EstablishedSince.IsZero() {
		h.EstablishedSince = timestamppb.New(l.EstablishedSince)
	}
	if !l.DownSince.IsZero() {
		h.DownSince = timestamppb.New(l.DownSince)
	}
	if !l.LastReceived.IsZero() {
		h.LastReceived = timestamppb.New(l.LastReceived)
	}
	if l.RTT > 0 {
		h.Rtt = durationProto(l.RTT)
	}
	return h
}

// ConnTypeProto maps an upstream ConnType to the API enum (upstream n is
// enum n+1; unknown values are UNSPECIFIED).
func ConnTypeProto(t mesh.ConnType) meshv1.ConnectionType {
	switch t {
	case mesh.ConnTypeDatagram:
		return meshv1.ConnectionType_CONNECTION_TYPE_DATAGRAM
	case mesh.ConnTypeStream:
		return meshv1.ConnectionType_CONNECTION_TYPE_STREAM
	case mesh.ConnTypeStreamTLS:
		return meshv1.ConnectionType_CONNECTION_TYPE_STREAM_TLS
	}
	return meshv1.ConnectionType_CONNECTION_TYPE_UNSPECIFIED
}

// localNode resolves "localhost" (any case) to the node's ID.
func (s *Server) localNode(node string) string {
	if strings.EqualFold(node, "localhost") {
		return s.node.NodeID()
	}
	return node
}

// checkService validates a service name from a request.
func checkService(field, service string, allowEmpty bool) error {
	if service == "" && !allowEmpty {
		return apierr.InvalidArgument(field, "must not be empty")
	}
	if len(service) > maxServiceLen {
		return apierr.InvalidArgument(field, fmt.Sprintf("%q is longer than %d bytes", service, maxServiceLen))
	}
	return nil
}

func durationProto(d time.Duration) *durationpb.Duration { return durationpb.New(d) }
