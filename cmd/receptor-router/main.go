// Command receptor-router is the node agent: it owns the mesh (backends,
// routing, advertisements, firewall, TLS, QUIC streams) and serves the
// control socket, gRPC and REST. Work requests go to the work agent named
// by the work-agent entity.
package main

import (
	"os"

	"github.com/receptor-mesh/receptor/services/launch"
	"github.com/receptor-mesh/receptor/services/router"
)

func main() {
	os.Exit(launch.Main(launch.Program{
		Name:  "receptor-router",
		Check: router.Check,
		Run:   router.RunFromConfig,
	}))
}
