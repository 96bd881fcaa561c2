package control

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// Reply rendering. Upstream builds every reply as a map and marshals it with
// encoding/json, so keys come out sorted; we do the same to get the same bytes.

// ErrorReply renders err as the reply line(s) upstream sends for it.
func ErrorReply(err error) []byte {
	line := []byte("ERROR: " + err.Error() + "\n")
	var jerr *JSONRequestError
	if errors.As(err, &jerr) {
		line = append(line, "ERROR: "+ErrUnknownCommand.Error()+"\n"...)
	}
	return line
}

// jsonLine marshals v as one compact JSON line.
func jsonLine(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("could not convert response to JSON: %w", err)
	}
	return append(b, '\n'), nil
}

// StatusReply renders the status reply for req.
func StatusReply(s Status, req StatusRequest) ([]byte, error) {
	all := map[string]any{
		"Advertisements":       orEmptySlice(s.Advertisements),
		"Connections":          orEmptySlice(s.Connections),
		"KnownConnectionCosts": orEmptyMap(s.KnownConnectionCosts),
		"NodeID":               s.NodeID,
		"RoutingTable":         orEmptyMap(s.RoutingTable),
		"SystemCPUCount":       s.SystemCPUCount,
		"SystemMemoryMiB":      s.SystemMemoryMiB,
		"Version":              s.Version,
	}
	if !req.Selected {
		return jsonLine(all)
	}
	out := make(map[string]any, len(req.Fields))
	for _, f := range req.Fields {
		if v, ok := all[f]; ok {
			out[f] = v
		}
	}
	return jsonLine(out)
}

// orEmptySlice makes nil slices marshal as [] (upstream's are never nil).
func orEmptySlice[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func orEmptyMap[K comparable, V any](m map[K]V) map[K]V {
	if m == nil {
		return map[K]V{}
	}
	return m
}

// PingReply renders a ping result.
func PingReply(r PingResult) ([]byte, error) {
	if r.Error != "" {
		return jsonLine(map[string]any{"Error": r.Error, "Success": false})
	}
	return jsonLine(map[string]any{
		"From": r.From, "Success": true, "Time": int64(r.Time), "TimeStr": r.Time.String(),
	})
}

// TracerouteReply renders hops keyed by decimal index strings; encoding/json
// sorts those keys bytewise ("10" before "2"), as upstream's output does.
func TracerouteReply(hops []TraceHop) ([]byte, error) {
	out := make(map[string]map[string]any, len(hops))
	for i, h := range hops {
		e := map[string]any{"From": h.From, "Time": int64(h.Time), "TimeStr": h.Time.String()}
		if h.Error != "" {
			e["Error"] = h.Error
		}
		out[strconv.Itoa(i)] = e
	}
	return jsonLine(out)
}

// ReloadReply renders a reload outcome.
func ReloadReply(err error) ([]byte, error) {
	if err != nil {
		return jsonLine(map[string]any{"Error": err.Error(), "Success": false})
	}
	return jsonLine(map[string]any{"Success": true})
}

// SubmitReply renders the final line of a successful work submit.
func SubmitReply(r WorkSubmitResult) ([]byte, error) {
	result := "Job Started"
	if r.Pending {
		result = "Job Submitted"
	}
	return jsonLine(map[string]string{"result": result, "unitid": r.UnitID})
}

// WorkStatusReply renders one unit's status object.
func WorkStatusReply(s WorkStatus) ([]byte, error) { return jsonLine(s) }

// WorkListReply renders the unit ID → status object map.
func WorkListReply(m map[string]WorkStatus) ([]byte, error) {
	return jsonLine(orEmptyMap(m))
}

// UnitActionReply renders cancel/release replies: {"<key>":"<unitid>"}.
func UnitActionReply(done, pendingKey string, pending bool, unitID string) ([]byte, error) {
	key := done
	if pending {
		key = pendingKey
	}
	return jsonLine(map[string]string{key: unitID})
}

// Greeting is the first line of every session.
func Greeting(nodeID string) []byte {
	return []byte("Receptor Control, node " + nodeID + "\n")
}

// SubmitCreatedLine is written before the work payload is read.
func SubmitCreatedLine(unitID string) []byte {
	return []byte("Work unit created with ID " + unitID + ". Send stdin data and EOF.\n")
}

// ResultsHeader starts a work results stream.
func ResultsHeader(unitID string) []byte {
	return []byte("Streaming results for work unit " + unitID + "\n")
}

// connectingLine starts a connect bridge.
var connectingLine = []byte("Connecting\n")
