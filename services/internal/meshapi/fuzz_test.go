package meshapi_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"testing"
	"time"

	meshv1 "github.com/receptor-mesh/receptor/gen/go/receptor/mesh/v1"
	"github.com/receptor-mesh/receptor/services/internal/meshapi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// splitMessages cuts fuzz input into length-prefixed pieces (2-byte big
// endian lengths), at most 8.
func splitMessages(data []byte) [][]byte {
	var out [][]byte
	for len(data) >= 2 && len(out) < 8 {
		n := int(binary.BigEndian.Uint16(data))
		data = data[2:]
		n = min(n, len(data))
		out = append(out, data[:n])
		data = data[n:]
	}
	return out
}

func frame(msgs ...proto.Message) []byte {
	var out []byte
	for _, m := range msgs {
		b, _ := proto.Marshal(m)
		out = binary.BigEndian.AppendUint16(out, uint16(len(b)))
		out = append(out, b...)
	}
	return out
}

// allowed are the codes a request may end with; anything else (Unknown,
// Internal from a panic) is a bug.
var allowed = map[codes.Code]bool{
	codes.OK: true, codes.InvalidArgument: true, codes.NotFound: true, codes.AlreadyExists: true,
	codes.Unavailable: true, codes.DeadlineExceeded: true, codes.Canceled: true, codes.PermissionDenied: true,
}

// fuzzMarker is the datagram FuzzPacketSocketRequests sends itself after
// an input's requests: its arrival proves the server handled them all.
var fuzzMarker = []byte("\x00fuzz: end of input\x00")

// FuzzPacketSocketRequests feeds arbitrary request sequences to a real
// server over a real node (set up once). A bound socket stays open after
// the client half-closes, so instead of waiting for the call's deadline the
// harness ends each input with a datagram to its own socket and stops at
// its echo: sends are handled in order, so every request before it was
// handled. Calls end only with the codes of bad input, never with a panic
// (Internal or Unknown).
func FuzzPacketSocketRequests(f *testing.F) {
	f.Add(frame(&meshv1.PacketSocketRequest{Msg: &meshv1.PacketSocketRequest_Bind{Bind: &meshv1.PacketBind{Service: "x"}}},
		&meshv1.PacketSocketRequest{Msg: &meshv1.PacketSocketRequest_Send{Send: &meshv1.PacketSend{Node: "b", Service: "y", Data: []byte("d")}}}))
	f.Add(frame(&meshv1.PacketSocketRequest{Msg: &meshv1.PacketSocketRequest_Bind{Bind: &meshv1.PacketBind{Service: "unreach", Advertise: true}}}))
	f.Add(frame(&meshv1.PacketSocketRequest{Msg: &meshv1.PacketSocketRequest_Send{Send: &meshv1.PacketSend{Node: "localhost"}}}))
	f.Add(frame(&meshv1.PacketSocketRequest{Msg: &meshv1.PacketSocketRequest_Bind{Bind: &meshv1.PacketBind{}}},
		&meshv1.PacketSocketRequest{Msg: &meshv1.PacketSocketRequest_Send{Send: &meshv1.PacketSend{Node: "localhost", Service: "nobody", Data: []byte("x")}}},
		&meshv1.PacketSocketRequest{Msg: &meshv1.PacketSocketRequest_Bind{Bind: &meshv1.PacketBind{Service: "again"}}}))
	f.Add([]byte{0, 3, 0xff, 0xff, 0xff})
	e := newEnv(f, meshapi.Options{})
	f.Fuzz(func(t *testing.T, data []byte) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		s, err := e.mc.PacketSocket(ctx)
		if err != nil {
			t.Fatal(err)
		}
		sent := 0
		for _, raw := range splitMessages(data) {
			var req meshv1.PacketSocketRequest
			if proto.Unmarshal(raw, &req) != nil {
				continue
			}
			if s.Send(&req) != nil {
				break
			}
			sent++
		}
		// The server answers the first request with Bound or an error; with
		// no request at all it waits for one.
		marked := sent == 0
		if marked {
			_ = s.CloseSend()
		}
		for {
			resp, err := s.Recv()
			if err != nil {
				if !allowed[status.Code(err)] {
					t.Fatalf("call ended with %v", err)
				}
				if status.Code(err) == codes.DeadlineExceeded {
					t.Fatalf("call neither ended nor echoed the end marker: %v", err)
				}
				return
			}
			if b := resp.GetBound(); b != nil && !marked {
				marked = true
				end := &meshv1.PacketSocketRequest{Msg: &meshv1.PacketSocketRequest_Send{Send: &meshv1.PacketSend{
					Node: "localhost", Service: b.GetService(), Data: fuzzMarker}}}
				if s.Send(end) != nil || s.CloseSend() != nil {
					continue // the call is ending; Recv reports how
				}
			}
			if p := resp.GetPacket(); p != nil && bytes.Equal(p.GetData(), fuzzMarker) {
				return // cancel ends the call
			}
		}
	})
}

// FuzzDialRequests does the same for Dial.
func FuzzDialRequests(f *testing.F) {
	f.Add(frame(&meshv1.DialRequest{Msg: &meshv1.DialRequest_Open{Open: &meshv1.DialOpen{Node: "b", Service: "s"}}},
		&meshv1.DialRequest{Msg: &meshv1.DialRequest_Data{Data: []byte("x")}}))
	f.Add(frame(&meshv1.DialRequest{Msg: &meshv1.DialRequest_Open{Open: &meshv1.DialOpen{Node: "localhost", Service: "123456789", TlsClient: "t"}}}))
	f.Add(frame(&meshv1.DialRequest{Msg: &meshv1.DialRequest_Open{Open: &meshv1.DialOpen{Node: "localhost", Service: "s", HalfClose: true}}},
		&meshv1.DialRequest{Msg: &meshv1.DialRequest_Open{Open: &meshv1.DialOpen{}}}))
	f.Add([]byte{0, 1, 0x0a})
	e := newEnv(f, meshapi.Options{})
	f.Fuzz(func(t *testing.T, data []byte) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		s, err := e.mc.Dial(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, raw := range splitMessages(data) {
			var req meshv1.DialRequest
			if proto.Unmarshal(raw, &req) != nil {
				continue
			}
			if s.Send(&req) != nil {
				break
			}
		}
		_ = s.CloseSend()
		for {
			if _, err := s.Recv(); err != nil {
				if !allowed[status.Code(err)] {
					t.Fatalf("call ended with %v", err)
				}
				return
			}
		}
	})
}
