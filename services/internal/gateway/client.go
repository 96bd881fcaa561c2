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
// results stream, so that an error before any output (unknown unit,
// signature refused) is the call's error: grpc-gateway then reports it
// with the HTTP code and envelope of unary routes, not as a stream chunk.
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
	st, err := c.ControlServiceClient.GetWorkResults(ctx, req, opts...)
	if err != nil {
		return nil, err
	}
	first, err := st.Recv()
	if err != nil && err != io.EOF {
		return nil, err
	}
	return &peekedResults{ControlService_GetWorkResultsClient: st, first: first, firstErr: err}, nil
}

// peekedResults replays the message (or EOF) GetWorkResults read first.
type peekedResults struct {
	controlv1.ControlService_GetWorkResultsClient
	first    *controlv1.GetWorkResultsResponse
	firstErr error
	replayed bool
}

func (p *peekedResults) Recv() (*controlv1.GetWorkResultsResponse, error) {
	if !p.replayed {
		p.replayed = true
		return p.first, p.firstErr
	}
	return p.ControlService_GetWorkResultsClient.Recv()
}
