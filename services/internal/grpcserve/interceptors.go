package grpcserve

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/receptor-mesh/receptor/services/internal/apierr"
)

// observer logs every call and feeds the metrics hook.
type observer struct {
	logger  *slog.Logger
	metrics MetricsFunc
}

func (o *observer) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	start := time.Now()
	resp, err := handler(ctx, req)
	o.observe(ctx, info.FullMethod, err, time.Since(start))
	return resp, err
}

func (o *observer) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	start := time.Now()
	err := handler(srv, ss)
	o.observe(ss.Context(), info.FullMethod, err, time.Since(start))
	return err
}

func (o *observer) observe(ctx context.Context, method string, err error, d time.Duration) {
	code := status.Code(err)
	if o.metrics != nil {
		o.metrics(method, code, d)
	}
	var from string
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		from = p.Addr.Network() + ":" + p.Addr.String()
	}
	switch code {
	case codes.Internal, codes.Unknown:
		// Internal is our bug; Unknown is a handler that returned an
		// error outside the apierr catalogue.
		o.logger.Warn("gRPC call failed", "method", method, "code", code.String(),
			"err", apierr.Text(err), "duration", d, "peer", from)
	default:
		o.logger.Debug("gRPC call", "method", method, "code", code.String(),
			"err", apierr.Text(err), "duration", d, "peer", from)
	}
}

// recoverUnary turns a handler panic into an Internal status so one bad
// request does not take the process down.
func recoverUnary(logger *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
		defer func() {
			if r := recover(); r != nil {
				resp, err = nil, panicked(logger, info.FullMethod, r)
			}
		}()
		return handler(ctx, req)
	}
}

func recoverStream(logger *slog.Logger) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
		defer func() {
			if r := recover(); r != nil {
				err = panicked(logger, info.FullMethod, r)
			}
		}()
		return handler(srv, ss)
	}
}

// panicked logs the panic with its stack and returns the status for the
// client, which names the method but not the panic value (it may hold
// internal data).
func panicked(logger *slog.Logger, method string, r any) error {
	logger.Error("panic in gRPC handler", "method", method, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
	return apierr.Internal(fmt.Errorf("handler of %s panicked", method))
}

// streamsEndOnStop cancels the context of every streaming call once
// stopping ends (the server is stopping), and reports such a call as
// Unavailable "server is stopping" so that its client reconnects later.
// It is the innermost interceptor: the handler sees the cancellable context.
func streamsEndOnStop(stopping context.Context) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx, cancel := context.WithCancel(ss.Context())
		defer cancel()
		stop := context.AfterFunc(stopping, cancel)
		defer stop()
		err := handler(srv, &ctxStream{ServerStream: ss, ctx: ctx})
		if err != nil && stopping.Err() != nil && ss.Context().Err() == nil {
			return apierr.ServerStopping()
		}
		return err
	}
}
