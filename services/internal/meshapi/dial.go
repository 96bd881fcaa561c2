package meshapi

import (
	"crypto/tls"
	"errors"
	"io"

	meshv1 "github.com/receptor-mesh/receptor/gen/go/receptor/mesh/v1"
	"github.com/receptor-mesh/receptor/services/internal/apierr"
	"github.com/receptor-mesh/receptor/services/tlsconf"
)

// Dial implements MeshService.
func (s *Server) Dial(gs meshv1.MeshService_DialServer) error {
	ctx := gs.Context()
	req, err := gs.Recv()
	if err != nil {
		return firstRecvError("open", err)
	}
	open := req.GetOpen()
	if open == nil {
		return apierr.InvalidArgument("open", "the first request must be open")
	}
	if open.GetNode() == "" {
		return apierr.InvalidArgument("open.node", "must not be empty")
	}
	if err := checkService("open.service", open.GetService(), false); err != nil {
		return err
	}
	node := s.localNode(open.GetNode())
	var tlsConf *tls.Config
	if name := open.GetTlsClient(); name != "" {
		base, err := s.lookupTLS(s.opts.TLSClient, name)
		if err != nil {
			return err
		}
		// The server must prove it is the node we dial (node-ID SAN).
		tlsConf = tlsconf.ForNode(base, node)
	}
	conn, err := s.streams.Dial(ctx, node, open.GetService(), tlsConf)
	if err != nil {
		s.log.Debug("meshapi: dial failed", "node", node, "service", open.GetService(), "err", err)
		return meshError(node, err)
	}
	local := meshAddr(conn.LocalAddr())
	if err := gs.Send(&meshv1.DialResponse{Msg: &meshv1.DialResponse_Connected{Connected: &meshv1.DialConnected{
		LocalNode: local.Node, LocalService: local.Service,
	}}}); err != nil {
		_ = conn.Close()
		return err
	}
	return s.bridge(newDialBytes(gs), conn, node, open.GetHalfClose())
}

// Accept implements MeshService.
func (s *Server) Accept(gs meshv1.MeshService_AcceptServer) error {
	req, err := gs.Recv()
	if err != nil {
		return firstRecvError("open", err)
	}
	open := req.GetOpen()
	if open == nil {
		return apierr.InvalidArgument("open", "the first request must be open")
	}
	pc, ok := s.parked.take(open.GetConnectionId())
	if !ok {
		return apierr.UnknownConnection(open.GetConnectionId())
	}
	// The listener may close once its last connection ends; closing it
	// aborts that connection, so wait until the connection itself is gone
	// (its dialer closed it, or it idled out), not merely until this call
	// is done with it: data still in flight toward the dialer would be lost.
	defer func() { go s.parked.releaseWhenEnded(pc.ls, pc.conn) }()
	remote := meshAddr(pc.conn.RemoteAddr())
	if err := gs.Send(&meshv1.AcceptResponse{Msg: &meshv1.AcceptResponse_Accepted{Accepted: &meshv1.Accepted{
		RemoteNode: remote.Node, RemoteService: remote.Service,
	}}}); err != nil {
		_ = pc.conn.Close()
		return err
	}
	return s.bridge(newAcceptBytes(gs), pc.conn, remote.Node, open.GetHalfClose())
}

// lookupTLS resolves a named TLS configuration; every failure is NOT_FOUND
// "unknown TLS config <name>" (the only way a lookup fails).
func (s *Server) lookupTLS(lookup func(string) (*tls.Config, error), name string) (*tls.Config, error) {
	if lookup == nil {
		return nil, apierr.UnknownTLSConfig(name)
	}
	cfg, err := lookup(name)
	if err != nil || cfg == nil {
		s.log.Debug("meshapi: TLS config lookup failed", "name", name, "err", err)
		return nil, apierr.UnknownTLSConfig(name)
	}
	return cfg, nil
}

// firstRecvError maps a failure to read the opening request.
func firstRecvError(field string, err error) error {
	if errors.Is(err, io.EOF) {
		return apierr.InvalidArgument(field, "the call ended before its first request")
	}
	return err
}
