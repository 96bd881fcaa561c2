package unit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// MaxStatusSize bounds the status file we are willing to read. Status files
// hold a few hundred bytes normally; remote units may carry secret params
// (kubeconfigs), hence the generous limit.
const MaxStatusSize = 4 << 20

// Status is the record kept in a unit's status file. Field order is the
// on-disk member order upstream writes (docs/protocol.md §13.3).
type Status struct {
	State      State           `json:"State"`
	Detail     string          `json:"Detail"`
	StdoutSize int64           `json:"StdoutSize"`
	WorkType   string          `json:"WorkType"`
	ExtraData  json.RawMessage `json:"ExtraData"`
}

// Report is a status as shown by `work status` and `work list`: the record
// plus StateName, with members in the sorted order upstream replies use.
type Report struct {
	Detail     string          `json:"Detail"`
	ExtraData  json.RawMessage `json:"ExtraData"`
	State      State           `json:"State"`
	StateName  string          `json:"StateName"`
	StdoutSize int64           `json:"StdoutSize"`
	WorkType   string          `json:"WorkType"`
	// Updated is when the status last changed (the status file's
	// modification time, Dir.Updated); zero when unknown. It is not a
	// member of upstream's status object, so it is never marshalled.
	Updated time.Time `json:"-"`
}

// Report converts the record to its reply form, replacing ExtraData with
// extra (nil means JSON null).
func (s Status) Report(extra json.RawMessage) Report {
	return Report{
		Detail:     s.Detail,
		ExtraData:  extra,
		State:      s.State,
		StateName:  s.State.Name(),
		StdoutSize: s.StdoutSize,
		WorkType:   s.WorkType,
	}
}

// Marshal encodes the record as the status file content: compact JSON and a
// newline. A record over MaxStatusSize is refused (ErrStatusTooLarge), as
// no reader would accept the file: writers keep the old record instead of
// making the unit unreadable.
func (s Status) Marshal() ([]byte, error) {
	if len(s.ExtraData) == 0 {
		s.ExtraData = nil
	}
	b, err := json.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("encoding status of %s unit: %w", s.WorkType, err)
	}
	if len(b)+1 > MaxStatusSize {
		return nil, fmt.Errorf("encoding status of %s unit (%d bytes): %w", s.WorkType, len(b)+1, ErrStatusTooLarge)
	}
	return append(b, '\n'), nil
}

// ErrStatusTooLarge is returned for status files above MaxStatusSize.
var ErrStatusTooLarge = errors.New("status file too large")

// ParseStatus decodes a status file's content. Unknown members are ignored,
// as upstream does; ExtraData is kept verbatim.
func ParseStatus(b []byte) (Status, error) {
	if len(b) > MaxStatusSize {
		return Status{}, fmt.Errorf("parsing status (%d bytes): %w", len(b), ErrStatusTooLarge)
	}
	var s Status
	if err := json.Unmarshal(b, &s); err != nil {
		return Status{}, fmt.Errorf("parsing status: %w", err)
	}
	if bytes.Equal(bytes.TrimSpace(s.ExtraData), []byte("null")) {
		s.ExtraData = nil
	}
	return s, nil
}
