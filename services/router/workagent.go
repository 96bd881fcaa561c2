package router

import (
	"context"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/status"

	"github.com/receptor-mesh/receptor/services/config"
	"github.com/receptor-mesh/receptor/services/internal/apierr"
	"github.com/receptor-mesh/receptor/services/internal/grpcserve"
	"github.com/receptor-mesh/receptor/services/tlsconf"
)

// dialWorkAgent connects to the work agent of a work-agent entity. The
// connection is lazy and reconnects with backoff, so the work agent may
// start after the router, restart, or be away for a while.
func dialWorkAgent(store *tlsconf.Store, wa *config.WorkAgent) (*grpc.ClientConn, error) {
	tlsCfg, err := store.Client(wa.TLSClient)
	if err != nil {
		return nil, fmt.Errorf("work-agent: %w", err)
	}
	var conn *grpc.ClientConn
	state := func() connectivity.State { return conn.GetState() }
	conn, err = grpcserve.Dial(wa.Address, tlsCfg,
		grpc.WithChainUnaryInterceptor(unaryUnreachable(wa.Address, state)),
		grpc.WithChainStreamInterceptor(streamUnreachable(wa.Address, state)))
	if err != nil {
		return nil, fmt.Errorf("work-agent: %s: %w", wa.Address, err)
	}
	return conn, nil
}

// agentUnreachable rewrites the transport error of a call that failed
// because the work agent itself cannot be reached (the connection is not
// ready), so users read "work agent at X is unreachable" instead of a raw
// dial error. UNAVAILABLE statuses sent by the agent (a remote node it
// cannot reach) pass unchanged: the connection was ready for those.
func agentUnreachable(addr string, state func() connectivity.State, err error) error {
	if status.Code(err) != codes.Unavailable || state() == connectivity.Ready {
		return err
	}
	return apierr.WorkAgentUnreachable(addr, err)
}

func unaryUnreachable(addr string, state func() connectivity.State) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		return agentUnreachable(addr, state, invoker(ctx, method, req, reply, cc, opts...))
	}
}

func streamUnreachable(addr string, state func() connectivity.State) grpc.StreamClientInterceptor {
	return func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		s, err := streamer(ctx, desc, cc, method, opts...)
		if err != nil {
			return nil, agentUnreachable(addr, state, err)
		}
		return unreachableStream{ClientStream: s, fix: func(err error) error { return agentUnreachable(addr, state, err) }}, nil
	}
}

// unreachableStream applies the rewrite to the errors of a stream's calls.
type unreachableStream struct {
	grpc.ClientStream
	fix func(error) error
}

func (s unreachableStream) RecvMsg(m any) error { return s.fix(s.ClientStream.RecvMsg(m)) }
func (s unreachableStream) SendMsg(m any) error { return s.fix(s.ClientStream.SendMsg(m)) }
