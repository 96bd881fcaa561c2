package wire

import "testing"

func TestPeekRoute(t *testing.T) {
	upstream, err := EncodeRoute(&RoutingUpdate{NodeID: "node-a", UpdateID: "Ab3dEf9h", UpdateEpoch: 7, UpdateSequence: 3,
		Connections: map[string]float64{"node-b": 1, "node-c": 2.5}, ForwardingNode: "node-b"})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		msg  []byte
		want RouteKeys
		ok   bool
	}{
		{"upstream encoding", upstream, RouteKeys{"node-a", "Ab3dEf9h", "node-b"}, true},
		{"other letter case", []byte("\x01" + `{"nodeid":"a","UPDATEID":"u","forwardingNODE":"f"}`), RouteKeys{"a", "u", "f"}, true},
		{"empty values", []byte("\x01" + `{"NodeID":"","UpdateID":"","ForwardingNode":""}`), RouteKeys{}, true},
		{"escape anywhere", []byte("\x01" + `{"NodeID":"a","UpdateID":"u","ForwardingNode":"f","x":"\n"}`), RouteKeys{}, false},
		{"escaped key", []byte("\x01" + `{"NodeID":"a","UpdateID":"u","ForwardingNode":"f","Node\u0049D":"b"}`), RouteKeys{}, false},
		{"key twice", []byte("\x01" + `{"NodeID":"a","nodeID":"b","UpdateID":"u","ForwardingNode":"f"}`), RouteKeys{}, false},
		{"key as a value too", []byte("\x01" + `{"NodeID":"a","UpdateID":"u","ForwardingNode":"NodeID"}`), RouteKeys{}, false},
		{"key as a connection", []byte("\x01" + `{"NodeID":"a","UpdateID":"u","Connections":{"UpdateID":1},"ForwardingNode":"f"}`), RouteKeys{"a", "u", "f"}, true},
		{"only nested", []byte("\x01" + `{"NodeID":"a","X":{"UpdateID":"u"},"ForwardingNode":"f"}`), RouteKeys{}, false},
		{"nested in a list", []byte("\x01" + `{"NodeID":"a","X":[{"UpdateID":"v"}],"UpdateID":"u","ForwardingNode":"f"}`), RouteKeys{"a", "u", "f"}, true},
		{"space before colon", []byte("\x01" + `{"NodeID" :"a","UpdateID":"u","ForwardingNode":"f"}`), RouteKeys{}, false},
		{"number value", []byte("\x01" + `{"NodeID":1,"UpdateID":"u","ForwardingNode":"f"}`), RouteKeys{}, false},
		{"missing key", []byte("\x01" + `{"NodeID":"a","UpdateID":"u"}`), RouteKeys{}, false},
		{"invalid UTF-8", []byte("\x01" + `{"NodeID":"a\xff","UpdateID":"u","ForwardingNode":"f"}`), RouteKeys{}, false},
		{"unterminated", []byte("\x01" + `{"NodeID":"a","UpdateID":"u","ForwardingNode":"f`), RouteKeys{}, false},
		{"wrong type", append([]byte{2}, upstream[1:]...), RouteKeys{}, false},
		{"empty", nil, RouteKeys{}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := PeekRoute(tc.msg)
			if ok != tc.ok || got != tc.want {
				t.Fatalf("PeekRoute = %+v, %v; want %+v, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

// FuzzPeekRoute: whenever PeekRoute and DecodeRoute both succeed, they
// agree on the three fields.
func FuzzPeekRoute(f *testing.F) {
	for _, s := range []string{
		`{"NodeID":"a","UpdateID":"u","UpdateEpoch":1,"UpdateSequence":2,"Connections":{"b":1},"ForwardingNode":"f","SuspectedDuplicate":0}`,
		`{"nodeid":"a","UpdateID":"u","ForwardingNode":"f","NodeID":"b"}`,
		`{"NodeID":"a","UpdateID":"u","ForwardingNode":"f","Connections":{"NodeID":1}}`,
		`{"NodeID":"a","UpdateID":"u","ForwardingNode":"f","NoDeId":"c"}`,
		`{"NodeID":"\u00e9","UpdateID":"u","ForwardingNode":"f"}`,
		`{"Extra":{"NodeID":"x"},"UpdateID":"u","ForwardingNode":"f"}`,
	} {
		f.Add(append([]byte{byte(TypeRoute)}, s...))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		k, ok := PeekRoute(msg)
		u, err := DecodeRoute(msg)
		if !ok || err != nil {
			return
		}
		if k.NodeID != u.NodeID || k.UpdateID != u.UpdateID || k.ForwardingNode != u.ForwardingNode {
			t.Fatalf("PeekRoute %+v, DecodeRoute %+v", k, u)
		}
	})
}
