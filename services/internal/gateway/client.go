package gateway

import (
	"context"
	"io"

	"google.golang.org/grpc"

	controlv1 "github.com/receptor-mesh/receptor/gen/go/receptor/control/v1"
	"github.com/receptor-mesh/receptor/services/internal/apierr"
	"github.com/receptor-mesh/receptor/services/internal/grpcserve"
)

// restClient is the ControlService client the REST routes call. It
// refuses inline stdin over CreateWork's limit itself, with the limit and
// the SubmitWork alternative in the message (gRPC's own send limit would
// answer with its internal text), and waits for the first message of a
// results or traceroute stream, so that an error before any output
// (unknown unit, signature refused, unknown node) is the call's error:
// grpc-gateway then reports it with the HTTP code and envelope of unary
// routes, not as a stream chunk.
type restClient struct {
	controlv1.ControlServiceClient
}

func (c *restClient) CreateWork(ctx context.Context, req *controlv1.CreateWorkRequest, opts ...grpc.CallOption) (*controlv1.CreateWorkResponse, error) {
	if n := len(req.GetStdin()); n > grpcserve.MaxCreateStdin {
		return nil, apierr.StdinTooLarge(n, grpcserve.MaxCreateStdin)
	}
	return c.ControlServiceClient.CreateWork(ctx, req, opts...)
}

func (c *restClient) GetWorkResults(ctx context.Context, req *controlv1.GetWorkResultsRequest, opts ...grpc.CallOption) (controlv1.ControlService_GetWorkResultsClient, error) {
	return peekFirst(c.ControlServiceClient.GetWorkResults(ctx, req, opts...))
}

// Traceroute waits for the first hop like GetWorkResults, so that a
// refused traceroute (unknown node, bad request) answers with the unary
// envelope too.
func (c *restClient) Traceroute(ctx context.Context, req *controlv1.TracerouteRequest, opts ...grpc.CallOption) (controlv1.ControlService_TracerouteClient, error) {
	return peekFirst(c.ControlServiceClient.Traceroute(ctx, req, opts...))
}

// peekFirst reads a server stream's first message: an error instead of it
// becomes the call's error, and the message (or EOF) is replayed.
func peekFirst[T any](st grpc.ServerStreamingClient[T], err error) (grpc.ServerStreamingClient[T], error) {
	if err != nil {
		return nil, err
	}
	first, err := st.Recv()
	if err != nil && err != io.EOF {
		return nil, err
	}
	return &peeked[T]{ServerStreamingClient: st, first: first, firstErr: err}, nil
}

// peeked replays the message (or EOF) peekFirst read first.
type peeked[T any] struct {
	grpc.ServerStreamingClient[T]
	first    *T
	firstErr error
	replayed bool
}

func (p *peeked[T]) Recv() (*T, error) {
	if !p.replayed {
		p.replayed = true
		return p.first, p.firstErr
	}
	return p.ServerStreamingClient.Recv()
}
