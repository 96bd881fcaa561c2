// Command receptor-probe checks the gRPC health service of a receptor
// process through its unix socket and exits 0 when it is SERVING, 1
// otherwise (the reason on stderr). It is the liveness and readiness probe
// of deploy/kubernetes (an exec probe: kubelet's gRPC probes speak
// plaintext TCP, which our gRPC TCP listeners refuse).
//
//	receptor-probe unix:///run/receptor/router.sock [service]
package main

import (
	"os"

	"github.com/receptor-mesh/receptor/services/launch"
)

func main() { os.Exit(launch.ProbeMain(os.Args[1:], os.Stderr)) }
