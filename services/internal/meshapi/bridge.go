package meshapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"

	meshv1 "github.com/receptor-mesh/receptor/gen/go/receptor/mesh/v1"
	"github.com/receptor-mesh/receptor/services/internal/apierr"
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
	// sendEOF tells the client that the mesh peer closed its direction.
	sendEOF() error
}

// chunkPool holds the read buffers of the mesh-to-client direction.
var chunkPool = sync.Pool{New: func() any { b := make([]byte, MaxChunkOut); return &b }}

// bridge copies bytes between a client call and a mesh connection.
//
// With halfClose (the client set `half_close` in its open), the mesh peer's
// EOF becomes an `eof` message and the call ends with OK only when the
// client has half-closed too, so a client can keep sending after the peer
// finished (TCP semantics). Without it, the original contract: the call
// ends with OK at the peer's EOF. Either way an error or cancel on one
// side ends the call at once.
//
// The mesh-to-client direction runs in the caller: it reads the next chunk
// only after the previous one was handed to gRPC, so a slow client slows
// the mesh stream through QUIC flow control instead of filling a buffer.
func (s *Server) bridge(gs byteStream, conn StreamConn, peer string, halfClose bool) error {
	ctx := gs.Context()
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()
	defer conn.Close()

	// The client-to-mesh direction. Its goroutine can only be blocked in
	// recvData, which returns once the call ends, i.e. right after this
	// handler returns, or in conn.Write, which the deferred Close ends; it
	// touches nothing but conn and its buffered channels.
	upErr := make(chan error, 1)
	writeFailed := make(chan error, 1)
	go func() {
		err := s.upload(gs, conn, peer, writeFailed)
		upErr <- err
		if err != nil {
			_ = conn.Close() // ends the Read below
		}
	}()

	rerr := s.download(gs, conn)
	var sendErr sendError
	if errors.As(rerr, &sendErr) {
		return sendErr.err
	}
	upDone := false
	select {
	case err := <-upErr:
		if err != nil {
			return err // the client's failure closed conn: report it, not the Read error
		}
		upDone = true
	default:
	}
	if !errors.Is(rerr, io.EOF) {
		return streamEnd(ctx, peer, rerr)
	}
	if !halfClose {
		return nil
	}
	if err := gs.sendEOF(); err != nil {
		return err
	}
	// The peer is done; the call now lives for the client's direction.
	// Once the client has seen eof, a lost write cannot be hidden behind
	// data still to come, so it fails the call.
	select {
	case err := <-writeFailed:
		return apierr.Unavailable(peer, err)
	default:
	}
	if upDone {
		return nil
	}
	select {
	case err := <-upErr:
		if err == nil {
			select {
			case werr := <-writeFailed:
				return apierr.Unavailable(peer, werr)
			default:
			}
		}
		return err
	case err := <-writeFailed:
		return apierr.Unavailable(peer, err)
	case <-ctx.Done():
		return apierr.ContextEnded(ctx.Err())
	}
}

// sendError marks a failure to send to the client, which already carries
// the call's status.
type sendError struct{ err error }

func (e sendError) Error() string { return e.err.Error() }

// download copies mesh data to the client until the peer's EOF (returned
// as io.EOF), a read error, or a sendError.
func (s *Server) download(gs byteStream, conn StreamConn) error {
	bp := chunkPool.Get().(*[]byte)
	defer chunkPool.Put(bp)
	buf := *bp
	for {
		n, rerr := conn.Read(buf)
		if n > 0 {
			if err := gs.sendData(buf[:n]); err != nil {
				return sendError{err}
			}
		}
		if rerr != nil {
			return rerr
		}
	}
}

// upload copies client chunks to conn and turns CloseSend into CloseWrite.
// After the mesh peer stopped reading, further chunks are discarded so the
// client never blocks; the first write error goes to writeFailed, and the
// bridge decides whether it ends the call.
func (s *Server) upload(gs byteStream, conn StreamConn, peer string, writeFailed chan<- error) error {
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
			writeFailed <- fmt.Errorf("write to the mesh peer: %w", err)
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
	_, isData := req.GetMsg().(*meshv1.DialRequest_Data)
	return clientChunk(req.GetData(), isData)
}

func (d *dialBytes) sendData(p []byte) error {
	d.data.Data = p
	return d.Send(d.resp)
}

func (d *dialBytes) sendEOF() error {
	return d.Send(&meshv1.DialResponse{Msg: &meshv1.DialResponse_Eof{Eof: &meshv1.StreamEOF{}}})
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
	_, isData := req.GetMsg().(*meshv1.AcceptRequest_Data)
	return clientChunk(req.GetData(), isData)
}

func (a *acceptBytes) sendData(p []byte) error {
	a.data.Data = p
	return a.Send(a.resp)
}

func (a *acceptBytes) sendEOF() error {
	return a.Send(&meshv1.AcceptResponse{Msg: &meshv1.AcceptResponse_Eof{Eof: &meshv1.StreamEOF{}}})
}

// clientChunk checks a Dial or Accept request that followed open: it must
// be data (isData), of at most MaxChunkIn bytes.
func clientChunk(data []byte, isData bool) ([]byte, error) {
	if !isData {
		return nil, apierr.InvalidArgument("msg", "only data may follow open")
	}
	if len(data) > MaxChunkIn {
		return nil, apierr.TooLarge("data", len(data), MaxChunkIn)
	}
	return data, nil
}

// meshAddr converts a connection address to a mesh address.
func meshAddr(a net.Addr) mesh.Addr {
	m, _ := mesh.AddrOf(a) // a label only: the best reading will do
	return m
}
