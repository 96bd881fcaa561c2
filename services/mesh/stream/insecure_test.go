package stream

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"testing"
	"time"
)

// TestInsecureCertCache: the certificate is made on first use, shared
// afterwards, renewed an hour before it expires, and a failed generation
// is reported and retried on the next handshake.
func TestInsecureCertCache(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	boom := errors.New("no entropy")
	steps := []struct {
		name      string
		at        time.Duration // clock, relative to t0
		fail      bool          // the generator fails this time
		wantGen   int           // generator calls so far
		wantCert  int           // which generated certificate is returned (1-based)
		wantError bool
	}{
		{"first handshake generates", 0, false, 1, 1, false},
		{"shared afterwards", time.Hour, false, 1, 1, false},
		{"still valid just before renewal", 23*time.Hour - time.Second, false, 1, 1, false},
		{"renewed an hour before NotAfter", 23 * time.Hour, false, 2, 2, false},
		{"renewed one is shared", 24 * time.Hour, false, 2, 2, false},
		{"failed renewal is an error", 47 * time.Hour, true, 3, 0, true},
		{"retried on the next handshake", 47 * time.Hour, false, 4, 4, false},
	}
	var now time.Time
	gens, fail := 0, false
	c := &insecureCertCache{
		now: func() time.Time { return now },
		generate: func() (tls.Certificate, error) {
			gens++
			if fail {
				return tls.Certificate{}, boom
			}
			// Version numbers the certificates; validity as in tlsconf.
			leaf := &x509.Certificate{NotAfter: now.Add(24 * time.Hour), Version: gens}
			return tls.Certificate{Certificate: [][]byte{{byte(gens)}}, Leaf: leaf}, nil
		},
	}
	for _, st := range steps {
		now, fail = t0.Add(st.at), st.fail
		cert, err := c.get(&tls.ClientHelloInfo{})
		if st.wantError {
			if !errors.Is(err, boom) {
				t.Fatalf("%s: error %v, want %v", st.name, err, boom)
			}
		} else if err != nil || cert.Leaf.Version != st.wantCert {
			t.Fatalf("%s: got certificate %v, %v; want number %d", st.name, cert, err, st.wantCert)
		}
		if gens != st.wantGen {
			t.Fatalf("%s: %d generations, want %d", st.name, gens, st.wantGen)
		}
	}
}
