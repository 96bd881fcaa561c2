package authz

import (
	"fmt"
	"strings"
)

// Role is what a principal may do. Roles are ordered: each allows what the
// one before it allows.
type Role int

const (
	// RoleNone allows nothing.
	RoleNone Role = iota
	// RoleReader reads node and work state.
	RoleReader
	// RoleOperator also submits, cancels and releases work.
	RoleOperator
	// RoleAdmin also reloads, connects, signs work and opens mesh sockets.
	RoleAdmin
)

var roleNames = [...]string{RoleNone: "none", RoleReader: "reader", RoleOperator: "operator", RoleAdmin: "admin"}

func (r Role) String() string {
	if r >= 0 && int(r) < len(roleNames) {
		return roleNames[r]
	}
	return fmt.Sprintf("role(%d)", int(r))
}

// ParseRole reads a role name as written in configuration.
func ParseRole(s string) (Role, error) {
	for i, n := range roleNames {
		if i > 0 && strings.EqualFold(s, n) {
			return Role(i), nil
		}
	}
	return RoleNone, fmt.Errorf("unknown role %q (want reader, operator or admin)", s)
}

// Action is one thing a caller asks a node to do.
type Action int

const (
	ActionStatus      Action = iota + 1 // status, version, health
	ActionPing                          // ping
	ActionTraceroute                    // traceroute
	ActionWorkRead                      // work list, status, results, watch
	ActionWorkSubmit                    // work submit
	ActionWorkCancel                    // work cancel
	ActionWorkRelease                   // work release, force-release
	ActionReload                        // reload the configuration
	ActionConnect                       // connect: a raw stream to any mesh service
	ActionSignWork                      // have this node sign a submission
	ActionMeshSocket                    // MeshService dial, listen, datagram sockets, adverts
	ActionMetrics                       // read the Prometheus metrics (/metrics)
	ActionWatchMesh                     // follow the mesh's events (WatchMesh)
	ActionWebView                       // the web view's files (public code, no node data)
	actionEnd
)

var actions = [...]struct {
	name string
	role Role
}{
	ActionStatus:      {"status", RoleReader},
	ActionPing:        {"ping", RoleReader},
	ActionTraceroute:  {"traceroute", RoleReader},
	ActionWorkRead:    {"work read", RoleReader},
	ActionWorkSubmit:  {"work submit", RoleOperator},
	ActionWorkCancel:  {"work cancel", RoleOperator},
	ActionWorkRelease: {"work release", RoleOperator},
	ActionReload:      {"reload", RoleAdmin},
	ActionConnect:     {"connect", RoleAdmin},
	ActionSignWork:    {"signwork", RoleAdmin},
	ActionMeshSocket:  {"mesh socket", RoleAdmin},
	ActionMetrics:     {"metrics", RoleReader},
	ActionWatchMesh:   {"watch mesh", RoleReader},
	// The files of the web view (GET /ui/...) are the same public code for
	// everyone and carry no node data: a caller without credentials must
	// get the page to be asked for them. What the page shows comes through
	// the API routes, each authorized under its own action.
	ActionWebView: {"web view", RoleNone},
}

func (a Action) valid() bool { return a > 0 && a < actionEnd }

func (a Action) String() string {
	if a.valid() {
		return actions[a].name
	}
	return fmt.Sprintf("action(%d)", int(a))
}

// Required is the least role that may perform a. An unknown action needs
// more than any role has.
func (a Action) Required() Role {
	if a.valid() {
		return actions[a].role
	}
	return RoleAdmin + 1
}

// Actions lists every action r may perform, in declaration order.
func (r Role) Actions() []Action {
	var out []Action
	for a := ActionStatus; a < actionEnd; a++ {
		if r.Allows(a) {
			out = append(out, a)
		}
	}
	return out
}

// Allows reports whether r may perform a.
func (r Role) Allows(a Action) bool { return r >= a.Required() }
