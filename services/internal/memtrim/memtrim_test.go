package memtrim

import (
	"bufio"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestReadOnlyMapping(t *testing.T) {
	exe := "/usr/bin/receptor"
	cases := []struct {
		line   string
		ok     bool
		lo, hi uintptr
	}{
		{"00400000-00c6e000 r-xp 00000000 fe:00 10634030   /usr/bin/receptor", true, 0x400000, 0xc6e000},
		{"00c6e000-01692000 r--p 0086e000 fe:00 10634030   /usr/bin/receptor", true, 0xc6e000, 0x1692000},
		{"01692000-01731000 rw-p 01292000 fe:00 10634030   /usr/bin/receptor", false, 0, 0},    // writable data
		{"7f00-8f00 r--p 00000000 fe:00 1   /usr/lib/other.so", false, 0, 0},                   // another file
		{"27ca4f000000-27ca4f800000 rw-p 00000000 00:00 0", false, 0, 0},                       // anonymous
		{"8f00-7f00 r--p 00000000 fe:00 1   /usr/bin/receptor", false, 0, 0},                   // empty range
		{"zz-8f00 r--p 00000000 fe:00 1   /usr/bin/receptor", false, 0, 0},                     // garbage
		{"00400000-00c6e000 r-xp 00000000 fe:00 1   /usr/bin/receptor (deleted)", false, 0, 0}, // replaced binary
	}
	for _, c := range cases {
		lo, hi, ok := readOnlyMapping(c.line, exe)
		if ok != c.ok || lo != c.lo || hi != c.hi {
			t.Errorf("%q: got %x-%x %v, want %x-%x %v", c.line, lo, hi, ok, c.lo, c.hi, c.ok)
		}
	}
}

// TestTrimAdvisesOwnBinary: Trim finds the test binary's text and
// read-only data, the kernel takes the pages back (RssFile falls), and the
// process goes on running code from those pages.
func TestTrimAdvisesOwnBinary(t *testing.T) {
	before := rssFileKiB(t)
	res, err := Trim()
	if err != nil {
		t.Fatal(err)
	}
	after := rssFileKiB(t)
	if res.Ranges < 2 || res.Bytes <= 0 {
		t.Fatalf("advised %d mappings (%d bytes), want the text and read-only data", res.Ranges, res.Bytes)
	}
	if after >= before {
		t.Fatalf("RssFile %d kB after Trim, %d kB before: nothing handed back", after, before)
	}
	if _, err := Trim(); err != nil {
		t.Fatalf("second Trim: %v", err)
	}
}

func rssFileKiB(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "RssFile:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")))
			if err != nil {
				t.Fatalf("RssFile %q: %v", rest, err)
			}
			return n
		}
	}
	t.Fatal("no RssFile in /proc/self/status")
	return 0
}

// TestCleanMappingsSkipsPrivatePages: a read-only mapping of the binary
// that holds private pages (relocated read-only data of a PIE build) is
// not advised; clean ones are, and other files' are not.
func TestCleanMappingsSkipsPrivatePages(t *testing.T) {
	smaps := `00400000-00c6e000 r-xp 00000000 fe:00 10634030   /usr/bin/receptor
Size:               8632 kB
Rss:                8000 kB
Anonymous:             0 kB
VmFlags: rd ex mr mw me
00c6e000-01692000 r--p 0086e000 fe:00 10634030   /usr/bin/receptor
Size:              10384 kB
Anonymous:            48 kB
VmFlags: rd mr mw me
01692000-01731000 rw-p 01292000 fe:00 10634030   /usr/bin/receptor
Anonymous:           300 kB
7f0000000000-7f0000001000 r--p 00000000 fe:00 1   /usr/lib/other.so
Anonymous:             0 kB
7f0000002000-7f0000003000 r--p 00001000 fe:00 10634030   /usr/bin/receptor
Anonymous:             0 kB
`
	got, err := cleanMappings(bufio.NewScanner(strings.NewReader(smaps)), "/usr/bin/receptor")
	if err != nil {
		t.Fatal(err)
	}
	want := [][2]uintptr{{0x400000, 0xc6e000}, {0x7f0000002000, 0x7f0000003000}}
	if !slices.Equal(got, want) {
		t.Fatalf("got %x, want %x", got, want)
	}
}
