package hostmem

import (
	"os"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestParseMemTotal(t *testing.T) {
	tests := []struct {
		name, in string
		want     int64
	}{
		{"typical", "MemTotal:       24683528 kB\nMemFree:         1234 kB\n", 24105},
		{"not first line", "MemFree: 1 kB\nMemTotal: 2048 kB\n", 2},
		{"below one MiB", "MemTotal: 1023 kB\n", 0},
		{"missing", "MemFree: 1 kB\n", 0},
		{"garbage", "MemTotal: lots kB\n", 0},
		{"negative", "MemTotal: -4096 kB\n", 0},
		{"empty", "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := parseMemTotal(strings.NewReader(tt.in)); got != tt.want {
				t.Errorf("parseMemTotal(%q) = %d, want %d", tt.in, got, tt.want)
			}
		})
	}
}

func TestTotalMiB(t *testing.T) {
	if _, err := os.Stat("/proc/meminfo"); err != nil {
		t.Skip("no /proc/meminfo on this host")
	}
	if got := TotalMiB(); got <= 0 {
		t.Errorf("TotalMiB() = %d on a host with /proc/meminfo", got)
	}
}
