// Package unit stores work units on disk in upstream Receptor's data
// directory layout: one directory per unit under <datadir>/<node>/, holding
// the status file, its lock file, and the unit's stdin and stdout.
//
// Library users meet it through package work: Agent.Status, List and Watch
// return Report values whose State is a unit.State. Store is the on-disk
// layer under the agent; use it directly only to read or write a data
// directory without running units.
package unit

import "strconv"

// State is a unit's lifecycle state as stored in the status file (docs/protocol.md §13.4).
type State int

// Wire values of the unit states.
const (
	Pending   State = 0
	Running   State = 1
	Succeeded State = 2
	Failed    State = 3
	Canceled  State = 4
)

// Name is the StateName shown in status replies.
func (s State) Name() string {
	switch s {
	case Pending:
		return "Pending"
	case Running:
		return "Running"
	case Succeeded:
		return "Succeeded"
	case Failed:
		return "Failed"
	case Canceled:
		return "Canceled"
	}
	return "Unknown: " + strconv.Itoa(int(s))
}

// Complete reports whether the unit reached a final state. Canceled is not
// complete upstream (quirk Q4 of docs/protocol.md §15.1); callers that must end on cancel check for it
// separately.
func (s State) Complete() bool { return s == Succeeded || s == Failed }
