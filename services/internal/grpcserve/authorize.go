package grpcserve

import (
	"context"
	"errors"
	"fmt"
	"net"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	"github.com/receptor-mesh/receptor/services/internal/apierr"
	"github.com/receptor-mesh/receptor/services/internal/authz"
)

// PrincipalMetadataKey carries, over the in-process connection only, the
// principal a relaying face (the REST gateway) authenticated. Servers
// reached through a socket ignore it: an outside caller cannot name
// itself.
const PrincipalMetadataKey = "receptor-principal"

// Face is the kind of listener a server answers on; it decides how a
// caller is identified.
type Face string

const (
	// FaceUnix: the caller is the unix-socket peer's uid.
	FaceUnix Face = "unix"
	// FaceTCP: the caller is its verified client certificate, else
	// anonymous (plaintext loopback).
	FaceTCP Face = "tcp"
	// FaceInProcess: the caller is the node's other half, or the principal
	// the REST gateway relays in PrincipalMetadataKey.
	FaceInProcess Face = "inprocess"
)

// identify names the caller of the call in ctx on face.
func identify(ctx context.Context, face Face) authz.Principal {
	p, _ := peer.FromContext(ctx)
	switch face {
	case FaceInProcess:
		md, _ := metadata.FromIncomingContext(ctx)
		if v := md.Get(PrincipalMetadataKey); len(v) == 1 {
			if pr, err := authz.ParsePrincipal(v[0]); err == nil && pr.Kind != authz.KindInternal {
				return pr
			}
			return authz.Anonymous
		} else if len(v) > 1 {
			return authz.Anonymous
		}
		return authz.Internal
	case FaceUnix:
		if p != nil {
			if info, ok := p.AuthInfo.(unixPeerInfo); ok {
				return info.principal
			}
		}
	case FaceTCP:
		if p != nil {
			if info, ok := p.AuthInfo.(credentials.TLSInfo); ok {
				return authz.FromTLS(info.State)
			}
		}
	}
	return authz.Anonymous
}

// authorizer puts the caller's principal in the context of every call
// and refuses calls its role does not allow.
type authorizer struct {
	policy *authz.Policy
	face   Face
}

func (a *authorizer) check(ctx context.Context, method string) (context.Context, error) {
	pr := identify(ctx, a.face)
	ctx = authz.NewContext(ctx, pr)
	action, ok := authz.MethodAction(method)
	if !ok {
		return ctx, apierr.Denied(fmt.Errorf("permission denied: %s is not open to any caller", method))
	}
	if err := a.policy.Check(pr, action, "grpc/"+string(a.face)); err != nil {
		return ctx, apierr.Denied(err)
	}
	return ctx, nil
}

func (a *authorizer) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	ctx, err := a.check(ctx, info.FullMethod)
	if err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

func (a *authorizer) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	ctx, err := a.check(ss.Context(), info.FullMethod)
	if err != nil {
		return err
	}
	return handler(srv, &ctxStream{ServerStream: ss, ctx: ctx})
}

// ctxStream is a ServerStream with the authorized context.
type ctxStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *ctxStream) Context() context.Context { return s.ctx }

var errServerOnly = errors.New("unix peer credentials identify clients; they do not dial")

// unixPeerCreds identifies the process at the other end of a unix-socket
// connection (SO_PEERCRED) during the transport handshake. Nothing is
// exchanged on the wire: clients dial with insecure credentials.
type unixPeerCreds struct{}

type unixPeerInfo struct {
	credentials.CommonAuthInfo
	principal authz.Principal
}

func (unixPeerInfo) AuthType() string { return "unix-peer" }

func (unixPeerCreds) ServerHandshake(conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	pr, err := authz.UnixPeer(conn)
	if err != nil {
		// Not a unix socket (a test's in-memory pipe): nobody.
		pr = authz.Anonymous
	}
	return conn, unixPeerInfo{
		CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.PrivacyAndIntegrity},
		principal:      pr,
	}, nil
}

func (unixPeerCreds) ClientHandshake(context.Context, string, net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, errServerOnly
}

func (unixPeerCreds) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: "unix-peer"}
}
func (c unixPeerCreds) Clone() credentials.TransportCredentials { return c }
func (unixPeerCreds) OverrideServerName(string) error           { return nil }
