package meshapi

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"

	meshv1 "github.com/receptor-mesh/receptor/gen/go/receptor/mesh/v1"
	"github.com/receptor-mesh/receptor/services/apierr"
	"github.com/receptor-mesh/receptor/services/mesh"
)

// byteStream is the data phase of a Dial or Accept call.
type byteStream interface {
	Context() context.Context
	// recvData returns the next client chunk; io.EOF after CloseSend.
	recvData() ([]byte, error)
	// sendData sends one chunk; p may be reused once it returns (gRPC
	// serializes the message before Send returns).
	sendData(p []byte) error
}

// chunkPool holds the read buffers of the mesh-to-client direction.
var chunkPool = sync.Pool{New: func() any { b := make([]byte, MaxChunkOut); return &b }}

// bridge copies bytes between a client call and a mesh connection until
// the mesh peer has closed its direction (status OK) or either side fails.
// The mesh-to-client direction runs in the caller: it reads the next chunk
// only after the previous one was handed to gRPC, so a slow client slows
// the mesh stream through QUIC flow control instead of filling a buffer.
func (s *Server) bridge(gs byteStream, conn StreamConn, peer string) error {
	ctx := gs.Context()
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()
	defer conn.Close()

	// The client-to-mesh direction. Its goroutine can only be blocked in
	// recvData, which returns once the call ends, i.e. right after this
	// handler returns; it touches nothing but conn (closed by then) and
	// its buffered channel.
	upErr := make(chan error, 1)
	go func() {
		err := s.upload(gs, conn, peer)
		upErr <- err
		if err != nil {
			_ = conn.Close() // ends the Read below
		}
	}()

	bp := chunkPool.Get().(*[]byte)
	defer chunkPool.Put(bp)
	buf := *bp
	for {
		n, rerr := conn.Read(buf)
		if n > 0 {
			if err := gs.sendData(buf[:n]); err != nil {
				return err
			}
		}
		if rerr == nil {
			continue
		}
		select {
		case err := <-upErr:
			if err != nil {
				return err
			}
		default:
		}
		if errors.Is(rerr, io.EOF) {
			return nil
		}
		return streamEnd(ctx, peer, rerr)
	}
}

// upload copies client chunks to conn and turns CloseSend into CloseWrite.
// After the mesh peer stopped reading, further chunks are discarded so the
// client never blocks; the call still ends only with the peer's direction.
func (s *Server) upload(gs byteStream, conn StreamConn, peer string) error {
	var writeErr error
	for {
		data, err := gs.recvData()
		if errors.Is(err, io.EOF) {
			if writeErr == nil {
				if err := conn.CloseWrite(); err != nil {
					s.log.Debug("meshapi: half-close toward the mesh failed", "peer", peer, "err", err)
				}
			}
			return nil
		}
		if err != nil {
			return err
		}
		if writeErr != nil || len(data) == 0 {
			continue
		}
		if _, err := conn.Write(data); err != nil {
			writeErr = err
			s.log.Debug("meshapi: mesh peer stopped reading; discarding client data", "peer", peer, "err", err)
		}
	}
}

type dialBytes struct {
	meshv1.MeshService_DialServer
	resp *meshv1.DialResponse
	data *meshv1.DialResponse_Data
}

func newDialBytes(gs meshv1.MeshService_DialServer) *dialBytes {
	d := &meshv1.DialResponse_Data{}
	return &dialBytes{MeshService_DialServer: gs, resp: &meshv1.DialResponse{Msg: d}, data: d}
}

func (d *dialBytes) recvData() ([]byte, error) {
	req, err := d.Recv()
	if err != nil {
		return nil, err
	}
	m, ok := req.GetMsg().(*meshv1.DialRequest_Data)
	if !ok {
		return nil, apierr.InvalidArgument("msg", "only data may follow open")
	}
	if len(m.Data) > MaxChunkIn {
		return nil, apierr.TooLarge("data", len(m.Data), MaxChunkIn)
	}
	return m.Data, nil
}

func (d *dialBytes) sendData(p []byte) error {
	d.data.Data = p
	return d.Send(d.resp)
}

type acceptBytes struct {
	meshv1.MeshService_AcceptServer
	resp *meshv1.AcceptResponse
	data *meshv1.AcceptResponse_Data
}

func newAcceptBytes(gs meshv1.MeshService_AcceptServer) *acceptBytes {
	d := &meshv1.AcceptResponse_Data{}
	return &acceptBytes{MeshService_AcceptServer: gs, resp: &meshv1.AcceptResponse{Msg: d}, data: d}
}

func (a *acceptBytes) recvData() ([]byte, error) {
	req, err := a.Recv()
	if err != nil {
		return nil, err
	}
	m, ok := req.GetMsg().(*meshv1.AcceptRequest_Data)
	if !ok {
		return nil, apierr.InvalidArgument("msg", "only data may follow open")
	}
	if len(m.Data) > MaxChunkIn {
		return nil, apierr.TooLarge("data", len(m.Data), MaxChunkIn)
	}
	return m.Data, nil
}

func (a *acceptBytes) sendData(p []byte) error {
	a.data.Data = p
	return a.Send(a.resp)
}

// meshAddr converts a connection address to a mesh address.
func meshAddr(a net.Addr) mesh.Addr {
	switch v := a.(type) {
	case mesh.Addr:
		return v
	case *mesh.Addr:
		return *v
	case nil:
		return mesh.Addr{}
	}
	node, svc, _ := strings.Cut(a.String(), ":")
	return mesh.Addr{Node: node, Service: svc}
}
