package worker

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	meshv1 "github.com/receptor-mesh/receptor/gen/go/receptor/mesh/v1"
	"github.com/receptor-mesh/receptor/services/internal/grpcserve"
	"github.com/receptor-mesh/receptor/services/router"
	"github.com/receptor-mesh/receptor/services/tlsconf"
)

// nodeCerts makes a CA and a certificate for node id, valid for 127.0.0.1,
// usable as server and client certificate.
func nodeCerts(t *testing.T, dir, id string) (ca, cert, key string) {
	t.Helper()
	f := func(n string) string { return filepath.Join(dir, n) }
	ca, cert, key = f("ca.crt"), f(id+".crt"), f(id+".key")
	if err := tlsconf.CertInit(tlsconf.CertInitOptions{CommonName: "test CA", OutCert: ca, OutKey: f("ca.key")}); err != nil {
		t.Fatal(err)
	}
	if err := tlsconf.CertMakeReq(tlsconf.CertMakeReqOptions{
		CommonName: id, Bits: 2048, NodeID: []string{id}, IPAddress: []string{"127.0.0.1"}, OutReq: f(id + ".csr"), OutKey: key,
	}); err != nil {
		t.Fatal(err)
	}
	if err := tlsconf.CertSignReq(tlsconf.CertSignReqOptions{
		Req: f(id + ".csr"), CACert: ca, CAKey: f("ca.key"), OutCert: cert, Verify: true,
	}, nil, nil); err != nil {
		t.Fatal(err)
	}
	return ca, cert, key
}

// TestSplitOverTLS runs router and worker talking gRPC over TCP with
// mutual TLS in both directions (work-agent and router entities).
func TestSplitOverTLS(t *testing.T) {
	dir := shortDir(t)
	ca, cert, key := nodeCerts(t, dir, "a")
	ctlSock := filepath.Join(dir, "ctl.sock")
	meshPort, routerPort, workerPort := freePort(t), freePort(t), freePort(t)
	tlsArgs := []string{
		"--tls-server", "name=srv", "cert=" + cert, "key=" + key, "requireclientcert=true", "clientcas=" + ca,
		"--tls-client", "name=cli", "cert=" + cert, "key=" + key, "rootcas=" + ca,
	}
	routerCfg := parse(t, append([]string{
		"--node", "id=a", "datadir=" + filepath.Join(dir, "router"),
		"--tcp-listener", "port=" + strconv.Itoa(meshPort), "bindaddr=127.0.0.1",
		"--control-service", "filename=" + ctlSock,
		"--grpc-server", "tcplisten=127.0.0.1:" + strconv.Itoa(routerPort), "tls=srv",
		"--work-agent", "address=127.0.0.1:" + strconv.Itoa(workerPort), "tlsclient=cli",
	}, tlsArgs...)...)
	workerCfg := parse(t, append([]string{
		"--node", "id=a", "datadir=" + filepath.Join(dir, "worker"),
		"--router", "address=127.0.0.1:" + strconv.Itoa(routerPort), "tlsclient=cli",
		"--grpc-server", "tcplisten=127.0.0.1:" + strconv.Itoa(workerPort), "tls=srv",
		"--work-command", "worktype=cat", "command=cat",
	}, tlsArgs...)...)
	routerLog, _ := newLog(t)
	workerLog, _ := newLog(t)
	service(t, "router", func(ctx context.Context) error { return router.RunFromConfig(ctx, routerCfg, routerLog, nil) })
	service(t, "worker", func(ctx context.Context) error { return RunFromConfig(ctx, workerCfg, workerLog, nil) })
	startNodeB(t, dir, meshPort)

	if out := submitAndRead(t, ctlSock, "a", "cat", "over mTLS\n"); out != "over mTLS\n" {
		t.Errorf("local work output = %q", out)
	}
	if out := submitAndRead(t, ctlSock, "b", "cat", "remote over mTLS\n"); out != "remote over mTLS\n" {
		t.Errorf("remote work output = %q", out)
	}

	// A client without a certificate is refused by the router's endpoint.
	pem, err := os.ReadFile(ca)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	conn, err := grpcserve.Dial("127.0.0.1:"+strconv.Itoa(routerPort), &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, err = meshv1.NewMeshServiceClient(conn).GetStatus(testCtx(t), &meshv1.GetStatusRequest{})
	if status.Code(err) != codes.Unavailable {
		t.Errorf("GetStatus without a client certificate: %v, want Unavailable", err)
	}
}
