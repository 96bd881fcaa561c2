package testkit

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/receptor-mesh/receptor/services/tlsconf"
)

// CertTool runs Receptor's certificate commands: cert-init, cert-makereq and
// cert-signreq. InProcessCertTool calls services/tlsconf; BinaryCertTool runs
// a receptor binary, which also tests the binary's commands.
type CertTool interface {
	CertInit(tlsconf.CertInitOptions) error
	CertMakeReq(tlsconf.CertMakeReqOptions) error
	// CertSignReq signs without asking (Verify is set).
	CertSignReq(tlsconf.CertSignReqOptions) error
}

// InProcessCertTool runs the certificate commands of services/tlsconf in
// this process.
func InProcessCertTool() CertTool { return inProcess{} }

type inProcess struct{}

func (inProcess) CertInit(o tlsconf.CertInitOptions) error       { return tlsconf.CertInit(o) }
func (inProcess) CertMakeReq(o tlsconf.CertMakeReqOptions) error { return tlsconf.CertMakeReq(o) }
func (inProcess) CertSignReq(o tlsconf.CertSignReqOptions) error {
	return tlsconf.CertSignReq(o, strings.NewReader(""), io.Discard)
}

// BinaryCertTool runs bin --cert-init, --cert-makereq and --cert-signreq
// with key=value arguments, as a user would.
func BinaryCertTool(bin string) CertTool { return binary(bin) }

type binary string

// binaryTimeout bounds one certificate command (RSA key generation).
const binaryTimeout = time.Minute

func (b binary) run(args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), binaryTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, string(b), args...)
	cmd.Stdin = strings.NewReader("")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %v\n%s", filepath.Base(string(b)), strings.Join(args, " "), err, out.String())
	}
	return nil
}

func kv(args []string, key, value string) []string {
	if value == "" {
		return args
	}
	return append(args, key+"="+value)
}

func (b binary) CertInit(o tlsconf.CertInitOptions) error {
	args := kv([]string{"--cert-init"}, "commonname", o.CommonName)
	if o.Bits != 0 {
		args = kv(args, "bits", strconv.Itoa(o.Bits))
	}
	args = kv(args, "notbefore", o.NotBefore)
	args = kv(args, "notafter", o.NotAfter)
	args = kv(args, "outcert", o.OutCert)
	return b.run(kv(args, "outkey", o.OutKey)...)
}

func (b binary) CertMakeReq(o tlsconf.CertMakeReqOptions) error {
	args := kv([]string{"--cert-makereq"}, "commonname", o.CommonName)
	if o.Bits != 0 {
		args = kv(args, "bits", strconv.Itoa(o.Bits))
	}
	for _, v := range o.DNSName {
		args = kv(args, "dnsname", v)
	}
	for _, v := range o.IPAddress {
		args = kv(args, "ipaddress", v)
	}
	for _, v := range o.NodeID {
		args = kv(args, "nodeid", v)
	}
	args = kv(args, "outreq", o.OutReq)
	args = kv(args, "inkey", o.InKey)
	return b.run(kv(args, "outkey", o.OutKey)...)
}

func (b binary) CertSignReq(o tlsconf.CertSignReqOptions) error {
	args := kv([]string{"--cert-signreq"}, "req", o.Req)
	args = kv(args, "cacert", o.CACert)
	args = kv(args, "cakey", o.CAKey)
	args = kv(args, "notbefore", o.NotBefore)
	args = kv(args, "notafter", o.NotAfter)
	args = kv(args, "outcert", o.OutCert)
	return b.run(append(args, "verify=true")...)
}

// CommandPKI is a CA and node certificates made with a CertTool (2048-bit
// RSA, as the commands make them), so that the peers accepting them also
// checks our certificate tooling. Its files live in Dir; the CA is made on
// first use. It is safe for concurrent use.
type CommandPKI struct {
	// Dir holds the files; CACert and CAKey are the CA's files in it.
	Dir, CACert, CAKey string

	tool       CertTool
	commonName string

	mu    sync.Mutex
	ca    bool
	nodes map[string]NodeCert
}

// NodeCert is a certificate and key file pair.
type NodeCert struct{ Cert, Key string }

// CertRequest is one certificate of a CommandPKI.
type CertRequest struct {
	// Name is the base of the file names in Dir (Name.crt, Name.key).
	Name       string
	CommonName string
	NodeIDs    []string
	DNSNames   []string
	IPs        []string
}

// NewCommandPKI is a CommandPKI in dir whose CA is named commonName.
func NewCommandPKI(tool CertTool, dir, commonName string) *CommandPKI {
	return &CommandPKI{
		Dir: dir, CACert: filepath.Join(dir, "ca.crt"), CAKey: filepath.Join(dir, "ca.key"),
		tool: tool, commonName: commonName, nodes: map[string]NodeCert{},
	}
}

// EnsureCA makes the CA unless it exists.
func (p *CommandPKI) EnsureCA(tb testing.TB) {
	tb.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ensureCA(tb)
}

func (p *CommandPKI) ensureCA(tb testing.TB) {
	tb.Helper()
	if p.ca {
		return
	}
	if err := p.tool.CertInit(tlsconf.CertInitOptions{
		CommonName: p.commonName, Bits: 2048, OutCert: p.CACert, OutKey: p.CAKey,
	}); err != nil {
		tb.Fatalf("cert-init: %v", err)
	}
	checkFiles(tb, p.CACert, p.CAKey)
	p.ca = true
}

// Node returns the pair of nodeID (SANs: the node ID, DNS localhost and IP
// 127.0.0.1, so peers dialing 127.0.0.1 verify it), made on first use.
func (p *CommandPKI) Node(tb testing.TB, nodeID string) NodeCert {
	tb.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if nc, ok := p.nodes[nodeID]; ok {
		return nc
	}
	nc := p.issue(tb, CertRequest{
		Name: nodeID, CommonName: nodeID, NodeIDs: []string{nodeID},
		DNSNames: []string{"localhost"}, IPs: []string{"127.0.0.1"},
	})
	p.nodes[nodeID] = nc
	return nc
}

// Issue makes the certificate req describes (every call makes a new one).
func (p *CommandPKI) Issue(tb testing.TB, req CertRequest) NodeCert {
	tb.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.issue(tb, req)
}

func (p *CommandPKI) issue(tb testing.TB, req CertRequest) NodeCert {
	tb.Helper()
	p.ensureCA(tb)
	base := filepath.Join(p.Dir, req.Name)
	nc := NodeCert{Cert: base + ".crt", Key: base + ".key"}
	if err := p.tool.CertMakeReq(tlsconf.CertMakeReqOptions{
		CommonName: req.CommonName, Bits: 2048,
		DNSName: req.DNSNames, IPAddress: req.IPs, NodeID: req.NodeIDs,
		OutReq: base + ".csr", OutKey: nc.Key,
	}); err != nil {
		tb.Fatalf("cert-makereq %s: %v", req.Name, err)
	}
	if err := p.tool.CertSignReq(tlsconf.CertSignReqOptions{
		Req: base + ".csr", CACert: p.CACert, CAKey: p.CAKey, OutCert: nc.Cert, Verify: true,
	}); err != nil {
		tb.Fatalf("cert-signreq %s: %v", req.Name, err)
	}
	checkFiles(tb, nc.Cert, nc.Key)
	return nc
}

func checkFiles(tb testing.TB, files ...string) {
	tb.Helper()
	for _, f := range files {
		if st, err := os.Stat(f); err != nil || st.Size() == 0 {
			tb.Fatalf("certificate file %s missing or empty: %v", f, err)
		}
	}
}
