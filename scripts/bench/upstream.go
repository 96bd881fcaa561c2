package main

import (
	"fmt"
	"os"
	"path/filepath"
)

// The upstream column: with RECEPTOR_UPSTREAM_BIN (or -upstream) naming
// upstream's receptor executable, a section runs the same load on a mesh
// of upstream processes in the same run and prints upstream's figure
// beside ours. Upstream and our binaries take the same command line
// (docs/cli.md), as integration/interop relies on too, so a section only
// picks the executable per role:
//
//	for _, im := range o.impls() {
//		bin := im.bin(roleRouter) // or roleNode
//		... measure with bin → value
//		figures[im.name] = value
//	}
//	rep.add(sideBySide(row{...}, figures[implOurs], figures[implUpstream], higherIsBetter))
//
// Upstream has one binary for every role and no gRPC API: load that
// needs gRPC stays ours-only.

// Implementation names, the keys of impl.name.
const (
	implOurs     = "ours"
	implUpstream = "upstream"
)

// Node roles: a bare router (our receptor-router) or a full node.
const (
	roleRouter = "router"
	roleNode   = "node"
)

// impl is one implementation whose binaries a section starts.
type impl struct {
	name string
	bin  func(role string) string
}

// upstreamBinFromEnv is the default of -upstream.
func upstreamBinFromEnv() string { return os.Getenv("RECEPTOR_UPSTREAM_BIN") }

// impls returns ours, then upstream's when configured.
func (o options) impls() []impl {
	out := []impl{{name: implOurs, bin: func(role string) string {
		if role == roleRouter {
			return filepath.Join(o.binDir, "receptor-router")
		}
		return filepath.Join(o.binDir, "receptor")
	}}}
	if o.upstreamBin != "" {
		up := o.upstreamBin
		out = append(out, impl{name: implUpstream, bin: func(string) string { return up }})
	}
	return out
}

// figure is one measurement of one implementation: v is the number
// compared (bytes/s, seconds, ...), text how it prints; err when it
// could not be taken.
type figure struct {
	v    float64
	text string
	err  error
}

// sideBySide fills r's Upstream and VsUpstream columns from up (when
// measured): VsUpstream is ours/up when higher is better, up/ours when
// lower is better, so "2.0×" always means ours is twice as good.
func sideBySide(r row, ours, up *figure, higherBetter bool) row {
	if up == nil {
		return r
	}
	if up.err != nil {
		r.Upstream = "error: " + oneLine(up.err.Error())
		return r
	}
	r.Upstream = up.text
	if ours != nil && ours.err == nil && ours.v > 0 && up.v > 0 {
		x := ours.v / up.v
		if !higherBetter {
			x = up.v / ours.v
		}
		r.VsUpstream = fmt.Sprintf("%.1f×", x)
	}
	return r
}
