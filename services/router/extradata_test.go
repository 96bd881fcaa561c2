package router

import (
	"testing"

	"google.golang.org/protobuf/types/known/structpb"
)

// TestExtraDataJSON: ExtraData keeps upstream's member order after its
// trip through a protobuf Value (golden bytes from upstream's replies).
func TestExtraDataJSON(t *testing.T) {
	tests := []struct {
		name string
		in   any
		want string
	}{
		{"null", nil, `null`},
		{"unknown type string", "Unknown WorkType", `"Unknown WorkType"`},
		{"command", map[string]any{"Params": "30", "Pid": 22162}, `{"Pid":22162,"Params":"30"}`},
		{"remote", map[string]any{
			"Expiration": "0001-01-01T00:00:00Z", "LocalCancelled": true, "LocalReleased": false,
			"RemoteNode": "node3", "RemoteParams": map[string]any{"z": "1", "a": "<&>"}, "RemoteStarted": true,
			"RemoteUnitID": "i08o6Hfd", "RemoteWorkType": "sleep", "SignWork": false, "TLSClient": "",
		}, `{"RemoteNode":"node3","RemoteWorkType":"sleep","RemoteParams":{"a":"\u003c\u0026\u003e","z":"1"},` +
			`"RemoteUnitID":"i08o6Hfd","RemoteStarted":true,"LocalCancelled":true,"LocalReleased":false,` +
			`"SignWork":false,"TLSClient":"","Expiration":"0001-01-01T00:00:00Z"}`},
		{"kubernetes", map[string]any{
			"PodName": "p", "KubePod": "", "KubeConfig": "", "KubeNamespace": "ns", "Params": "x", "Command": "c", "Image": "i",
		}, `{"Image":"i","Command":"c","Params":"x","KubeNamespace":"ns","KubeConfig":"","KubePod":"","PodName":"p"}`},
		{"unknown members last, sorted", map[string]any{"b": 1, "Pid": 2, "a": 1.5}, `{"Pid":2,"a":1.5,"b":1}`},
		{"empty object", map[string]any{}, `{}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := structpb.NewValue(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			got, err := extraDataJSON(v)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("extraDataJSON = %s\nwant            %s", got, tt.want)
			}
		})
	}
}
