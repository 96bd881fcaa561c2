// Package buildinfo reports the version of the running binary.
//
// Version is stamped at link time by the Makefile
// (-X github.com/receptor-mesh/receptor/services/internal/buildinfo.Version=...);
// without it the module version recorded by the Go toolchain is used.
package buildinfo

import (
	"runtime"
	"runtime/debug"
)

// Version is set at link time; empty means "ask the toolchain".
var Version string

// Info describes the binary.
type Info struct {
	Version   string
	Commit    string
	GoVersion string
}

// Get returns the version information of the running binary.
func Get() Info {
	info := Info{Version: Version, GoVersion: runtime.Version()}
	bi, ok := debug.ReadBuildInfo()
	if ok {
		if info.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			info.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				info.Commit = s.Value
			}
		}
	}
	if info.Version == "" {
		info.Version = "0.0.0-dev"
	}
	return info
}
