package gateway

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"testing"
)

// TestServeOffersHTTP2AfterReload: when the TLS config chooses another
// config per connection (a certificate store after a reload does), HTTPS
// clients still get HTTP/2, with the new certificate.
func TestServeOffersHTTP2AfterReload(t *testing.T) {
	before, after := testServerTLS(t), testServerTLS(t)
	cfg := before.Clone()
	cfg.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) { return after.Clone(), nil }

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Serve(ctx, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}), lis, cfg, quietLogger())
	}()
	t.Cleanup(func() { cancel(); <-done })

	pool := x509.NewCertPool()
	pool.AddCert(after.Certificates[0].Leaf)
	client := &http.Client{Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true,
	}}
	resp, err := client.Get("https://" + lis.Addr().String() + "/")
	if err != nil {
		t.Fatalf("GET with the reloaded certificate: %v", err)
	}
	resp.Body.Close()
	if resp.ProtoMajor != 2 {
		t.Errorf("protocol %s after a reload, want HTTP/2", resp.Proto)
	}
}
