package grpcserve

import (
	"context"
	"fmt"
	"net"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"
)

// inProcessBuffer bounds each direction's in-memory buffer per connection.
const inProcessBuffer = 1 << 20

// InProcess is an in-memory listener and its dialer, for the all-in-one
// binary that wires router and work agent through the same gRPC APIs
// without a socket. Serve a Server on Listener and connect with Dial.
type InProcess struct {
	lis *bufconn.Listener
}

// NewInProcess creates the pair. Close the listener (Serve does) to end it.
func NewInProcess() *InProcess {
	return &InProcess{lis: bufconn.Listen(inProcessBuffer)}
}

// Listener is the server side; its address network is "bufconn", so calls
// over it are identified as the node itself, or as the principal the REST
// gateway relays (FaceInProcess).
func (p *InProcess) Listener() net.Listener { return p.lis }

// DialOption connects a client to the listener.
func (p *InProcess) DialOption() grpc.DialOption {
	return grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
		return p.lis.DialContext(ctx)
	})
}

// Dial creates a client connection to the listener with the usual client
// options; extra options are appended.
func (p *InProcess) Dial(extra ...grpc.DialOption) (*grpc.ClientConn, error) {
	opts := append(clientOptions(), p.DialOption(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	conn, err := grpc.NewClient("passthrough:///in-process", append(opts, extra...)...)
	if err != nil {
		return nil, fmt.Errorf("dialing in-process gRPC server: %w", err)
	}
	return conn, nil
}
