package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestPercentile(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		out := make([]time.Duration, len(v))
		for i, x := range v {
			out[i] = time.Duration(x) * time.Millisecond
		}
		return out
	}
	tests := []struct {
		name    string
		samples []time.Duration
		p       float64
		want    time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one", ms(7), 99, 7 * time.Millisecond},
		{"median odd unsorted", ms(5, 1, 3), 50, 3 * time.Millisecond},
		{"median even", ms(4, 1, 3, 2), 50, 2 * time.Millisecond},
		{"p99 of 100", ms(seq(100)...), 99, 99 * time.Millisecond},
		{"p99 of 10 is the max", ms(seq(10)...), 99, 10 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			orig := append([]time.Duration(nil), tt.samples...)
			if got := percentile(tt.samples, tt.p); got != tt.want {
				t.Errorf("percentile(%v, %v) = %v, want %v", tt.samples, tt.p, got, tt.want)
			}
			for i := range orig {
				if orig[i] != tt.samples[i] {
					t.Fatalf("samples modified: %v", tt.samples)
				}
			}
		})
	}
}

func seq(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i + 1
	}
	return out
}

func TestMarkdownEscapesPipes(t *testing.T) {
	var r report
	r.add(row{Group: "g", Name: "a | b", Value: "1", Verdict: "ok"})
	var b bytes.Buffer
	if err := r.writeMarkdown(&b, "# h\n"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), `| g | a \| b | 1 |`) {
		t.Errorf("markdown row not escaped:\n%s", b.String())
	}
}

func TestWriteBigFileSize(t *testing.T) {
	for _, size := range []int64{0, 1, 1 << 20, 1<<20 + 3} {
		p := filepath.Join(t.TempDir(), "f")
		if err := writeBigFile(p, size); err != nil {
			t.Fatal(err)
		}
		n, _, err := readFileTime(p)
		if err != nil || n != size {
			t.Errorf("size %d: read %d bytes, err %v", size, n, err)
		}
	}
}

func TestRSSOfSelf(t *testing.T) {
	kib, err := rssKiB(os.Getpid())
	if err != nil || kib <= 0 {
		t.Fatalf("rssKiB(self) = %d, %v", kib, err)
	}
	if _, err := rssKiB(-1); err == nil {
		t.Error("rssKiB(-1): no error")
	}
}

func TestConvergenceSmall(t *testing.T) {
	el, err := convergence(t.Context(), 6)
	if err != nil {
		t.Fatal(err)
	}
	if el <= 0 {
		t.Errorf("elapsed %v", el)
	}
}

func TestSideBySide(t *testing.T) {
	r := sideBySide(row{Name: "x"}, &figure{v: 30, text: "30"}, &figure{v: 10, text: "10"}, true)
	if r.Upstream != "10" || r.VsUpstream != "3.0×" {
		t.Errorf("higher is better: %+v", r)
	}
	r = sideBySide(row{Name: "x"}, &figure{v: 0.1, text: "0.1 ms"}, &figure{v: 0.4, text: "0.4 ms"}, false)
	if r.VsUpstream != "4.0×" {
		t.Errorf("lower is better: %+v", r)
	}
	if r = sideBySide(row{Name: "x"}, &figure{v: 1}, nil, true); r.Upstream != "" || r.VsUpstream != "" {
		t.Errorf("no upstream: %+v", r)
	}
}
