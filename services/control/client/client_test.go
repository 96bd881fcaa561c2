package client

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestParseAddress(t *testing.T) {
	tests := []struct {
		in, network, addr string
		bad               bool
	}{
		{in: "/tmp/x.sock", network: "unix", addr: "/tmp/x.sock"},
		{in: "unix:/tmp/x.sock", network: "unix", addr: "/tmp/x.sock"},
		{in: "unix:///tmp/x.sock", network: "unix", addr: "/tmp/x.sock"},
		{in: "rel.sock", network: "unix", addr: "rel.sock"},
		{in: "tcp://localhost:11112", network: "tcp", addr: "localhost:11112"},
		{in: "tcp:127.0.0.1:1", network: "tcp", addr: "127.0.0.1:1"},
		{in: "tls://host-1.example:443", network: "tls", addr: "host-1.example:443"},
		{in: "tcp://::1:80", network: "tcp", addr: "[::1]:80"},
		{in: "tcp://host", bad: true},
		{in: "http://x:1", bad: true},
		{in: "", bad: true},
	}
	for _, tt := range tests {
		network, addr, err := ParseAddress(tt.in)
		if tt.bad {
			if err == nil {
				t.Errorf("ParseAddress(%q) = %s %s, want error", tt.in, network, addr)
			}
			continue
		}
		if err != nil || network != tt.network || addr != tt.addr {
			t.Errorf("ParseAddress(%q) = %q %q %v, want %q %q", tt.in, network, addr, err, tt.network, tt.addr)
		}
	}
}

func FuzzParseAddress(f *testing.F) {
	for _, s := range []string{"/tmp/x", "unix://a", "tcp://h:1", "tls:h:2", "tcp://::1:80", "x:y:z", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		network, addr, err := ParseAddress(s)
		if err != nil {
			return
		}
		if network != "unix" && network != "tcp" && network != "tls" {
			t.Fatalf("ParseAddress(%q) network %q", s, network)
		}
		if addr == "" {
			t.Fatalf("ParseAddress(%q) gave an empty address", s)
		}
	})
}
