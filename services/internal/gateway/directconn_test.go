package gateway

import (
	"context"
	"io"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// directConn is a grpc.ClientConnInterface that calls a service's
// handlers in the calling process, without gRPC's transport: messages
// are copied with proto.Merge, the caller's outgoing metadata becomes the
// handler's incoming metadata, and no server interceptor runs (so nothing
// is authorized: use it only with a policy that allows everything). It
// lets the fuzz targets spend their time in the gateway's request
// decoding rather than in HTTP/2 framing, which the Go fuzzer's per-input
// coverage instrumentation makes expensive.
type directConn struct {
	services map[string]direct // by full method name, "/pkg.Service/Method"
}

type direct struct {
	impl   any
	unary  grpc.MethodHandler
	stream grpc.StreamHandler
}

// directService is a service description and its implementation.
type directService struct {
	desc *grpc.ServiceDesc
	impl any
}

// newDirectConn serves the given services.
func newDirectConn(regs ...directService) *directConn {
	c := &directConn{services: map[string]direct{}}
	for _, r := range regs {
		for _, m := range r.desc.Methods {
			c.services["/"+r.desc.ServiceName+"/"+m.MethodName] = direct{impl: r.impl, unary: m.Handler}
		}
		for _, s := range r.desc.Streams {
			c.services["/"+r.desc.ServiceName+"/"+s.StreamName] = direct{impl: r.impl, stream: s.Handler}
		}
	}
	return c
}

func incoming(ctx context.Context) context.Context {
	md, _ := metadata.FromOutgoingContext(ctx)
	return metadata.NewIncomingContext(ctx, md.Copy())
}

func (c *directConn) Invoke(ctx context.Context, method string, args, reply any, _ ...grpc.CallOption) error {
	d, ok := c.services[method]
	if !ok || d.unary == nil {
		return status.Errorf(codes.Unimplemented, "unknown method %s", method)
	}
	out, err := d.unary(d.impl, incoming(ctx), func(into any) error {
		proto.Merge(into.(proto.Message), args.(proto.Message))
		return nil
	}, nil)
	if err != nil {
		return err
	}
	proto.Merge(reply.(proto.Message), out.(proto.Message))
	return nil
}

func (c *directConn) NewStream(ctx context.Context, _ *grpc.StreamDesc, method string, _ ...grpc.CallOption) (grpc.ClientStream, error) {
	d, ok := c.services[method]
	if !ok || d.stream == nil {
		return nil, status.Errorf(codes.Unimplemented, "unknown method %s", method)
	}
	ctx, cancel := context.WithCancel(ctx)
	s := &directStream{ctx: ctx, cancel: cancel, toServer: make(chan proto.Message, 1), toClient: make(chan proto.Message)}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.err = d.stream(d.impl, &directServerStream{s: s, ctx: incoming(ctx)})
		close(s.toClient)
	}()
	return s, nil
}

// directStream is both ends of one call: the handler runs on its own
// goroutine and hands each message over an unbuffered channel; the
// client's RecvMsg returns the handler's error (or io.EOF) once it
// returned. A client that stops early cancels the context the handler
// sends under.
type directStream struct {
	ctx      context.Context
	cancel   context.CancelFunc
	toServer chan proto.Message
	toClient chan proto.Message
	wg       sync.WaitGroup
	err      error // the handler's; read after toClient is closed
	sendOnce sync.Once
}

func (s *directStream) Header() (metadata.MD, error) { return metadata.MD{}, nil }
func (s *directStream) Trailer() metadata.MD         { return metadata.MD{} }
func (s *directStream) Context() context.Context     { return s.ctx }

func (s *directStream) CloseSend() error {
	s.sendOnce.Do(func() { close(s.toServer) })
	return nil
}

func (s *directStream) SendMsg(m any) error {
	select {
	case s.toServer <- proto.Clone(m.(proto.Message)):
		return nil
	case <-s.ctx.Done():
		return s.ctx.Err()
	}
}

func (s *directStream) RecvMsg(m any) error {
	msg, ok := <-s.toClient
	if !ok {
		s.cancel()
		s.wg.Wait()
		if s.err != nil {
			return s.err
		}
		return io.EOF
	}
	proto.Merge(m.(proto.Message), msg)
	return nil
}

// directServerStream is the handler's side of a directStream.
type directServerStream struct {
	s   *directStream
	ctx context.Context
}

func (d *directServerStream) SetHeader(metadata.MD) error  { return nil }
func (d *directServerStream) SendHeader(metadata.MD) error { return nil }
func (d *directServerStream) SetTrailer(metadata.MD)       {}
func (d *directServerStream) Context() context.Context     { return d.ctx }

func (d *directServerStream) SendMsg(m any) error {
	select {
	case d.s.toClient <- proto.Clone(m.(proto.Message)):
		return nil
	case <-d.ctx.Done():
		return status.FromContextError(d.ctx.Err()).Err()
	}
}

func (d *directServerStream) RecvMsg(m any) error {
	select {
	case msg, ok := <-d.s.toServer:
		if !ok {
			return io.EOF
		}
		proto.Merge(m.(proto.Message), msg)
		return nil
	case <-d.ctx.Done():
		return status.FromContextError(d.ctx.Err()).Err()
	}
}
