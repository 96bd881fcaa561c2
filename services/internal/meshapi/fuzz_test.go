package meshapi_test

import (
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

// FuzzPacketSocketRequests feeds arbitrary request sequences to a real
// server over a real node.
func FuzzPacketSocketRequests(f *testing.F) {
	f.Add(frame(&meshv1.PacketSocketRequest{Msg: &meshv1.PacketSocketRequest_Bind{Bind: &meshv1.PacketBind{Service: "x"}}},
		&meshv1.PacketSocketRequest{Msg: &meshv1.PacketSocketRequest_Send{Send: &meshv1.PacketSend{Node: "b", Service: "y", Data: []byte("d")}}}))
	f.Add(frame(&meshv1.PacketSocketRequest{Msg: &meshv1.PacketSocketRequest_Bind{Bind: &meshv1.PacketBind{Service: "unreach", Advertise: true}}}))
	f.Add(frame(&meshv1.PacketSocketRequest{Msg: &meshv1.PacketSocketRequest_Send{Send: &meshv1.PacketSend{Node: "localhost"}}}))
	f.Add([]byte{0, 3, 0xff, 0xff, 0xff})
	e := newEnv(f, meshapi.Options{})
	f.Fuzz(func(t *testing.T, data []byte) {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		s, err := e.mc.PacketSocket(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, raw := range splitMessages(data) {
			var req meshv1.PacketSocketRequest
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
