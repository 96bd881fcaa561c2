package meshapi

import (
	"context"
	"errors"

	"github.com/receptor-mesh/receptor/services/internal/apierr"
	"github.com/receptor-mesh/receptor/services/mesh"
	"github.com/receptor-mesh/receptor/services/mesh/stream"
	"google.golang.org/grpc/status"
)

// meshError turns a failure of an operation towards node into a gRPC
// status with the upstream text (apierr.MeshFailure picks the code).
func meshError(node string, err error) error {
	if st, ok := grpcStatus(err); ok {
		return st.Err()
	}
	var ue *mesh.UnreachableError
	switch {
	case errors.As(err, &ue):
		return apierr.MeshFailure(node, ue.Problem)
	case errors.Is(err, stream.ErrServiceUnknown):
		return apierr.MeshFailure(node, mesh.ProblemServiceUnknown)
	case errors.Is(err, mesh.ErrNoRoute):
		return apierr.MeshFailure(node, mesh.ErrNoRoute.Error())
	case errors.Is(err, mesh.ErrPingTimeout), errors.Is(err, context.DeadlineExceeded):
		return apierr.Timeout(node)
	case errors.Is(err, context.Canceled):
		return apierr.Cancelled(node)
	case errors.Is(err, mesh.ErrClosed):
		return apierr.Shutdown(node)
	}
	return apierr.Unavailable(node, err)
}

// bindError maps a failure to bind a service name.
func bindError(field, service string, err error) error {
	switch {
	case errors.Is(err, mesh.ErrServiceTaken), errors.Is(err, mesh.ErrServiceReserved):
		return apierr.ServiceInUse(service)
	case errors.Is(err, mesh.ErrServiceName):
		return apierr.InvalidArgument(field, err.Error())
	case errors.Is(err, mesh.ErrClosed):
		return apierr.Shutdown("")
	}
	return apierr.Internal(err)
}

// streamEnd maps the error that ended a byte bridge: context ends become
// Canceled / DeadlineExceeded, statuses pass through, anything else is a
// mesh transport failure.
func streamEnd(ctx context.Context, node string, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return apierr.ContextEnded(ctxErr)
	}
	if st, ok := grpcStatus(err); ok {
		return st.Err()
	}
	return apierr.Unavailable(node, err)
}

// grpcStatus finds a status in err's chain (a lookup hook may return one).
func grpcStatus(err error) (*status.Status, bool) {
	var se interface{ GRPCStatus() *status.Status }
	if errors.As(err, &se) {
		return se.GRPCStatus(), true
	}
	return nil, false
}
