// Package authz is the one authorizer of every face of a node: the
// receptorctl protocol (unix socket, TCP, mesh "control" service), the gRPC
// ControlService, MeshService and WorkService, and the REST gateway.
//
// A caller is a Principal: the peer of a unix socket (its uid), a verified
// TLS client certificate (its node ID, else DNS name, else common name), a
// bearer token, a mesh node (the node ID its routing claims), an
// unauthenticated caller, or the node's own other half (the in-process
// connection between router and work agent). A Policy maps principals to
// a Role, and a Role allows a set of Actions:
//
//	reader    status, version, ping, traceroute, work list/status/results
//	operator  reader + work submit, cancel, release, force-release
//	admin     operator + reload, connect, signwork, MeshService sockets
//
// Faces identify their caller, put the Principal in the context and ask
// Policy.Authorize; they never decide trust themselves. A denial is logged
// once, here, with the principal and the action.
package authz
