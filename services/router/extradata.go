package router

import (
	"bytes"
	"encoding/json"
	"sort"

	"google.golang.org/protobuf/types/known/structpb"
)

// extraDataOrder is upstream's member order of ExtraData objects (Go
// structs there): command units {Pid, Params}, Kubernetes units {Image,
// Command, Params, KubeNamespace, KubeConfig, KubePod, PodName}, remote
// units {RemoteNode ... Expiration}. The three orders agree, so one list
// serves all. The agent's status crosses gRPC as a protobuf Value, whose
// objects are maps; this restores byte fidelity for raw-socket clients.
var extraDataOrder = func() map[string]int {
	names := []string{
		"Pid", "Image", "Command", "Params", "KubeNamespace", "KubeConfig", "KubePod", "PodName",
		"RemoteNode", "RemoteWorkType", "RemoteParams", "RemoteUnitID", "RemoteStarted",
		"LocalCancelled", "LocalReleased", "SignWork", "TLSClient", "Expiration",
	}
	m := make(map[string]int, len(names))
	for i, n := range names {
		m[n] = i
	}
	return m
}()

// extraDataJSON encodes a unit's ExtraData as upstream does: known members
// in upstream's order, any others after them sorted, nested objects sorted
// (upstream's nested maps). nil means JSON null.
func extraDataJSON(v *structpb.Value) (json.RawMessage, error) {
	obj := v.GetStructValue()
	if obj == nil {
		return json.Marshal(v.AsInterface())
	}
	keys := make([]string, 0, len(obj.GetFields()))
	for k := range obj.GetFields() {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		oi, iok := extraDataOrder[keys[i]]
		oj, jok := extraDataOrder[keys[j]]
		switch {
		case iok && jok:
			return oi < oj
		case iok != jok:
			return iok
		}
		return keys[i] < keys[j]
	})
	var buf bytes.Buffer
	buf.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			buf.WriteByte(',')
		}
		kb, err := json.Marshal(k)
		if err != nil {
			return nil, err
		}
		vb, err := json.Marshal(obj.GetFields()[k].AsInterface())
		if err != nil {
			return nil, err
		}
		buf.Write(kb)
		buf.WriteByte(':')
		buf.Write(vb)
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}
