package wire

import (
	"bytes"
	"testing"
)

func FuzzDecodeData(f *testing.F) {
	f.Add([]byte{})
	f.Add(make([]byte, 36))
	good, _ := AppendData(nil, DataHeader{HopsToLive: 3, FromService: "abcdefgh", ToService: "x"}, []byte("payload"))
	f.Add(good)
	f.Fuzz(func(t *testing.T, msg []byte) {
		h, p, err := DecodeData(msg)
		if err != nil {
			return
		}
		// Re-encoding keeps everything except the reserved bytes and
		// trailing NULs of the service fields.
		out, err := AppendData(nil, h, p)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		h2, p2, err := DecodeData(out)
		if err != nil || h2 != h || !bytes.Equal(p2, p) {
			t.Fatalf("round trip: %+v %v", h2, err)
		}
	})
}

func FuzzDecodeRoute(f *testing.F) {
	f.Add([]byte("\x01" + `{"NodeID":"up1","UpdateID":"3WbNOi9v","UpdateEpoch":30125522179662404,"UpdateSequence":2,"Connections":{"py1":1},"ForwardingNode":"up1","SuspectedDuplicate":0}`))
	f.Add([]byte("\x01{}"))
	f.Add([]byte("\x01null"))
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, msg []byte) {
		u, err := DecodeRoute(msg)
		if err != nil {
			return
		}
		if _, err := EncodeRoute(u); err != nil && len(msg) < MaxMessageSize/2 {
			t.Fatalf("re-encode decoded update: %v", err)
		}
	})
}

func FuzzDecodeAd(f *testing.F) {
	f.Add([]byte("\x02" + `{"NodeID":"node1","Service":"control","Time":"2024-05-06T07:08:09.123456789+02:00","ConnType":1,"Tags":{"type":"Control Service"},"WorkCommands":[{"WorkType":"echo","Secure":false}],"Cancel":false}`))
	f.Add([]byte("\x02{\"Tags\":null}"))
	f.Add([]byte{2})
	f.Fuzz(func(t *testing.T, msg []byte) {
		a, err := DecodeAd(msg)
		if err != nil {
			return
		}
		_, _ = EncodeAd(a)
	})
}

func FuzzDecodeUnreachable(f *testing.F) {
	f.Add([]byte(`{"FromNode":"py1","ToNode":"up1","FromService":"abc","ToService":"nosvc","Problem":"service unknown"}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, p []byte) {
		u, err := DecodeUnreachable(p)
		if err != nil {
			return
		}
		if _, err := EncodeUnreachable(u); err != nil {
			t.Fatalf("re-encode: %v", err)
		}
	})
}
