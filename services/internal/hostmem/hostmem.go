// Package hostmem reports the host's total physical memory, the figure
// upstream's status shows as SystemMemoryMiB and a work agent reports as
// its capacity.
package hostmem

import (
	"bufio"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
)

// TotalMiB is the host's total physical memory in MiB (MemTotal of
// /proc/meminfo); 0 when it cannot be read (non-Linux).
func TotalMiB() int64 { return totalMiB() }

// totalMiB reads /proc/meminfo once: the kernel builds that file on every
// read, and status replies ask for the figure on every call.
var totalMiB = sync.OnceValue(func() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	return parseMemTotal(f)
})

func parseMemTotal(r io.Reader) int64 {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:")
		if !ok {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
		if err != nil || kb < 0 {
			return 0
		}
		return kb / 1024
	}
	return 0
}
