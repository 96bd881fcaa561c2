// Package memtrim hands memory that only start-up needed back to the
// kernel, once, after a long-running process has started.
//
// Where an idle node's resident memory goes (docs/performance.md, "Idle
// RSS"): about 3 MiB of heap, stacks and runtime, and 17 MiB of the
// binary's own pages. The binary's pages are resident because start-up
// touches code and tables all over it (package initialisers, protobuf
// descriptor registration, configuration parsing, gRPC and Prometheus
// set-up) and the kernel maps the cached neighbours of every page faulted
// in (fault-around), so nearly all of the 8 MiB of text and 10 MiB of
// read-only data end up mapped. An idle node runs a small part of that
// code. Trim unmaps the binary's read-only pages from this process
// (madvise MADV_DONTNEED on its private, never-written file mappings: the
// pages stay in the kernel's page cache, shared and reclaimable, and what
// the node then runs faults back in from there as minor faults) and
// returns freed heap pages (debug.FreeOSMemory). MADV_PAGEOUT would also
// evict the pages from the page cache, and the first calls after it paid
// disk reads: a GetStatus p99 of 6.5 ms in the run right after the trim.
package memtrim

import (
	"bufio"
	"fmt"
	"os"
	"runtime/debug"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Result says what Trim advised.
type Result struct {
	Ranges int   // mappings of the executable advised
	Bytes  int64 // their total size
}

// Trim returns freed heap pages to the kernel and drops this process's
// mappings of the pages of the running executable's read-only and
// executable file mappings. A mapping that holds any private page is
// left alone: a page written before it was made read-only (the relocated
// read-only data of a position-independent build, which the dynamic
// loader patches and then protects) would come back from the file
// unpatched. The others are private and never written, so their pages
// fault back in from the file, and Trim is safe at any time; its cost is
// those faults, so call it once start-up is over.
func Trim() (Result, error) {
	debug.FreeOSMemory()
	exe, err := os.Executable()
	if err != nil {
		return Result{}, fmt.Errorf("memtrim: own executable: %w", err)
	}
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		return Result{}, fmt.Errorf("memtrim: %w", err)
	}
	defer f.Close()
	candidates, err := cleanMappings(bufio.NewScanner(f), exe)
	if err != nil {
		return Result{}, fmt.Errorf("memtrim: read smaps: %w", err)
	}
	var res Result
	for _, m := range candidates {
		// The range is a file mapping, not Go memory: advising it
		// changes no Go value (hence the raw system call, with no Go
		// pointer made from an address).
		if _, _, errno := unix.Syscall(unix.SYS_MADVISE, m[0], m[1]-m[0], unix.MADV_DONTNEED); errno != 0 {
			return res, fmt.Errorf("memtrim: madvise %x-%x: %w", m[0], m[1], errno)
		}
		res.Ranges++
		res.Bytes += int64(m[1] - m[0])
	}
	return res, nil
}

// cleanMappings reads /proc/self/smaps and returns the ranges of exe's
// read-only mappings whose pages are all the file's (Anonymous: 0 kB).
func cleanMappings(sc *bufio.Scanner, exe string) ([][2]uintptr, error) {
	var out [][2]uintptr
	var cur [2]uintptr
	have, private := false, false
	flush := func() {
		if have && !private {
			out = append(out, cur)
		}
		have, private = false, false
	}
	for sc.Scan() {
		line := sc.Text()
		if isMappingHeader(line) {
			flush()
			if lo, hi, ok := readOnlyMapping(line, exe); ok {
				cur, have = [2]uintptr{lo, hi}, true
			}
			continue
		}
		if v, ok := strings.CutPrefix(line, "Anonymous:"); ok {
			if f := strings.Fields(v); len(f) == 0 || f[0] != "0" {
				private = true
			}
		}
	}
	flush()
	return out, sc.Err()
}

// isMappingHeader reports whether an smaps line starts a mapping
// ("lo-hi perms offset dev inode [path]").
func isMappingHeader(line string) bool {
	f := strings.Fields(line)
	if len(f) < 5 {
		return false
	}
	_, _, ok := parseRange(f[0])
	return ok
}

// parseRange parses a mapping's "lo-hi" (hexadecimal).
func parseRange(s string) (lo, hi uint64, ok bool) {
	a, b, found := strings.Cut(s, "-")
	if !found {
		return 0, 0, false
	}
	l, err1 := strconv.ParseUint(a, 16, 64)
	h, err2 := strconv.ParseUint(b, 16, 64)
	return l, h, err1 == nil && err2 == nil
}

// readOnlyMapping parses one /proc/self/maps line and reports its range
// when it maps file exe without write permission.
func readOnlyMapping(line, exe string) (lo, hi uintptr, ok bool) {
	f := strings.Fields(line)
	if len(f) < 6 || strings.Join(f[5:], " ") != exe || len(f[1]) < 2 || f[1][1] != '-' {
		return 0, 0, false
	}
	l, h, ok := parseRange(f[0])
	if !ok || h <= l {
		return 0, 0, false
	}
	return uintptr(l), uintptr(h), true
}
