package wire

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestHashNameVectors(t *testing.T) {
	tests := []struct{ name, want string }{
		{"", "7035da75b9d54469"},
		{"a", "bd6efba9eb78e61f"},
		{"A", "2ca5969f27d057fd"},
		{"B", "6cc29299673d18eb"},
		{"foo", "ef7a78b67f92bdf7"},
		{"node1", "61052d2b582eb15e"},
		{"node2", "51bcc6e14eb3fee1"},
		{"ping", "e98e3242f8b15e51"},
		{"unreach", "e05eac0110f1ce44"},
		{"control", "3bdee1e3b5f2dbcd"},
		{"abcdefgh", "2d414a97ccdf6470"},
		{"localhost", "99c4380a442ae062"},
		{"héllo", "39e219ee94302eb0"},
		{"receptor-1.example.com", "2a0b93323d6dbf1d"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := fmt.Sprintf("%016x", HashName(tt.name)); got != tt.want {
				t.Fatalf("HashName(%q) = %s, want %s", tt.name, got, tt.want)
			}
		})
	}
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDataGolden(t *testing.T) {
	want := mustHex(t, "00 1e 00 00 61052d2b582eb15e 51bcc6e14eb3fee1 6162000000000000 70696e6700000000 6869")
	h := DataHeader{HopsToLive: 30, FromNode: HashName("node1"), ToNode: HashName("node2"), FromService: "ab", ToService: "ping"}
	got, err := AppendData(nil, h, []byte("hi"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("AppendData = %x, want %x", got, want)
	}
	// Reserved bytes are ignored on receipt.
	in := bytes.Clone(want)
	in[2], in[3] = 0xff, 0xee
	dh, payload, err := DecodeData(in)
	if err != nil {
		t.Fatal(err)
	}
	if dh != h || string(payload) != "hi" {
		t.Fatalf("DecodeData = %+v %q", dh, payload)
	}
}

func TestDataDecodeServices(t *testing.T) {
	tests := []struct {
		name     string
		field    []byte
		wantName string
	}{
		{"full 8 bytes", []byte("abcdefgh"), "abcdefgh"},
		{"embedded NUL kept", []byte{'a', 0, 'b', 0, 0, 0, 0, 0}, "a\x00b"},
		{"empty", make([]byte, 8), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg := make([]byte, DataHeaderLen)
			copy(msg[20:28], tt.field)
			h, p, err := DecodeData(msg)
			if err != nil {
				t.Fatal(err)
			}
			if h.FromService != tt.wantName || len(p) != 0 {
				t.Fatalf("got %q, payload %d", h.FromService, len(p))
			}
		})
	}
}

func TestDataErrors(t *testing.T) {
	tests := []struct {
		name string
		msg  []byte
		want error
	}{
		{"empty", nil, ErrEmpty},
		{"wrong type", []byte{1, 2, 3}, ErrWrongType},
		{"short", make([]byte, 35), ErrShortHeader},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, err := DecodeData(tt.msg); !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
	if _, err := AppendData(nil, DataHeader{FromService: "123456789"}, nil); !errors.Is(err, ErrServiceLen) {
		t.Fatalf("long service: %v", err)
	}
	if _, err := AppendData(nil, DataHeader{ToService: "123456789"}, nil); !errors.Is(err, ErrServiceLen) {
		t.Fatalf("long to service: %v", err)
	}
	if _, err := AppendData(nil, DataHeader{}, make([]byte, MaxDataPayload+1)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("large payload: %v", err)
	}
	if _, err := AppendData(nil, DataHeader{}, make([]byte, MaxDataPayload)); err != nil {
		t.Fatalf("max payload: %v", err)
	}
}

func TestRouteGolden(t *testing.T) {
	tests := []struct {
		name string
		u    RoutingUpdate
		want string
	}{
		{
			name: "spec example",
			u: RoutingUpdate{NodeID: "up1", UpdateID: "3WbNOi9v", UpdateEpoch: 30125522179662404, UpdateSequence: 2,
				Connections: map[string]float64{"py1": 1}, ForwardingNode: "up1"},
			want: `{"NodeID":"up1","UpdateID":"3WbNOi9v","UpdateEpoch":30125522179662404,"UpdateSequence":2,"Connections":{"py1":1},"ForwardingNode":"up1","SuspectedDuplicate":0}`,
		},
		{
			name: "floats and key order",
			u: RoutingUpdate{NodeID: "a", UpdateEpoch: 1, Connections: map[string]float64{"z": 1.5, "b": 1e-7, "B": 1e21, "c": 2},
				ForwardingNode: "b", SuspectedDuplicate: 18446744073709551615},
			want: `{"NodeID":"a","UpdateID":"","UpdateEpoch":1,"UpdateSequence":0,"Connections":{"B":1e+21,"b":1e-7,"c":2,"z":1.5},"ForwardingNode":"b","SuspectedDuplicate":18446744073709551615}`,
		},
		{
			name: "nil and empty connections",
			u:    RoutingUpdate{NodeID: "<&>"},
			want: `{"NodeID":"\u003c\u0026\u003e","UpdateID":"","UpdateEpoch":0,"UpdateSequence":0,"Connections":null,"ForwardingNode":"","SuspectedDuplicate":0}`,
		},
		{
			name: "empty map",
			u:    RoutingUpdate{Connections: map[string]float64{}},
			want: `{"NodeID":"","UpdateID":"","UpdateEpoch":0,"UpdateSequence":0,"Connections":{},"ForwardingNode":"","SuspectedDuplicate":0}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := EncodeRoute(&tt.u)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != "\x01"+tt.want {
				t.Fatalf("EncodeRoute =\n%s\nwant\n\x01%s", got, tt.want)
			}
			back, err := DecodeRoute(got)
			if err != nil {
				t.Fatal(err)
			}
			again, _ := EncodeRoute(back)
			if !bytes.Equal(again, got) {
				t.Fatalf("round trip changed bytes: %s", again)
			}
		})
	}
}

func TestRouteDecodeLeniency(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    RoutingUpdate
		wantErr bool
	}{
		{name: "lowercase and unknown keys", in: `{"nodeid":"x","updateepoch":30125522179662405,"extra":[1,2],"connections":{"y":2.5}}`,
			want: RoutingUpdate{NodeID: "x", UpdateEpoch: 30125522179662405, Connections: map[string]float64{"y": 2.5}}},
		{name: "missing keys", in: `{}`, want: RoutingUpdate{}},
		{name: "null connections", in: `{"NodeID":"n","Connections":null}`, want: RoutingUpdate{NodeID: "n"}},
		{name: "negative epoch fails", in: `{"UpdateEpoch":-1}`, wantErr: true},
		{name: "fractional sequence fails", in: `{"UpdateSequence":1.5}`, wantErr: true},
		{name: "garbage", in: `{"NodeID":`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeRoute(append([]byte{1}, tt.in...))
			if tt.wantErr {
				if err == nil {
					t.Fatalf("want error, got %+v", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(*got) != fmt.Sprint(tt.want) {
				t.Fatalf("got %+v, want %+v", *got, tt.want)
			}
		})
	}
	if _, err := DecodeRoute([]byte{2, '{', '}'}); !errors.Is(err, ErrWrongType) {
		t.Fatalf("wrong type: %v", err)
	}
}

func TestAdGolden(t *testing.T) {
	tm := time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.FixedZone("", 2*3600))
	tests := []struct {
		name string
		ad   Advertisement
		want string
	}{
		{
			name: "control",
			ad: Advertisement{NodeID: "node1", Service: "control", Time: tm, ConnType: 1,
				Tags: map[string]string{"type": "Control Service"}, WorkCommands: []WorkCommand{{WorkType: "echo"}}},
			want: `{"NodeID":"node1","Service":"control","Time":"2024-05-06T07:08:09.123456789+02:00","ConnType":1,"Tags":{"type":"Control Service"},"WorkCommands":[{"WorkType":"echo","Secure":false}],"Cancel":false}`,
		},
		{
			name: "cancel with nulls",
			ad:   Advertisement{NodeID: "node1", Service: "x", Time: time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC), Cancel: true},
			want: `{"NodeID":"node1","Service":"x","Time":"2024-01-02T03:04:05Z","ConnType":0,"Tags":null,"WorkCommands":null,"Cancel":true}`,
		},
		{
			name: "empty non-nil",
			ad:   Advertisement{Tags: map[string]string{}, WorkCommands: []WorkCommand{}},
			want: `{"NodeID":"","Service":"","Time":"0001-01-01T00:00:00Z","ConnType":0,"Tags":{},"WorkCommands":[],"Cancel":false}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := EncodeAd(&tt.ad)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != "\x02"+tt.want {
				t.Fatalf("EncodeAd =\n%s\nwant\n\x02%s", got, tt.want)
			}
			back, err := DecodeAd(got)
			if err != nil {
				t.Fatal(err)
			}
			if !back.Time.Equal(tt.ad.Time) || back.Cancel != tt.ad.Cancel || (back.Tags == nil) != (tt.ad.Tags == nil) ||
				(back.WorkCommands == nil) != (tt.ad.WorkCommands == nil) {
				t.Fatalf("round trip: %+v", back)
			}
		})
	}
	if _, err := DecodeAd([]byte("\x02{\"Time\":\"yesterday\"}")); err == nil {
		t.Fatal("bad time accepted")
	}
}

func TestUnreachableGolden(t *testing.T) {
	want := `{"FromNode":"py1","ToNode":"up1","FromService":"abc","ToService":"nosvc","Problem":"service unknown"}`
	u := UnreachablePayload{FromNode: "py1", ToNode: "up1", FromService: "abc", ToService: "nosvc", Problem: "service unknown"}
	got, err := EncodeUnreachable(&u)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Fatalf("got %s", got)
	}
	back, err := DecodeUnreachable(got)
	if err != nil || *back != u {
		t.Fatalf("decode: %+v %v", back, err)
	}
	if _, err := DecodeUnreachable([]byte("nope")); err == nil {
		t.Fatal("garbage accepted")
	}
}

func TestRejectGolden(t *testing.T) {
	if hex.EncodeToString(Reject) != "035b5d" {
		t.Fatalf("Reject = %x", Reject)
	}
}

func TestRandomName(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		n := RandomName()
		if len(n) != 8 || strings.Trim(n, updateIDCharset) != "" {
			t.Fatalf("bad name %q", n)
		}
		seen[n] = true
	}
	if len(seen) < 99 {
		t.Fatalf("names repeat: %d distinct", len(seen))
	}
	now := time.Unix(1700000000, 0)
	e := NewEpoch(now)
	if e>>24 != 1700000000 {
		t.Fatalf("epoch %d", e)
	}
}
