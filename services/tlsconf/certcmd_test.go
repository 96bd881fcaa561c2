package tlsconf

import (
	"bytes"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func readPEMTypes(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		types = append(types, b.Type)
	}
	return types
}

func fileMode(t *testing.T, path string) os.FileMode {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Mode().Perm()
}

func near(a, b time.Time) bool { d := a.Sub(b); return d > -time.Minute && d < time.Minute }

func TestCertInitDefaults(t *testing.T) {
	dir := t.TempDir()
	crt, key := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key")
	// A pre-existing world-readable file must end up 0600 too.
	if err := os.WriteFile(key, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := CertInit(CertInitOptions{CommonName: "My CA", OutCert: crt, OutKey: key}); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{crt, key} {
		if m := fileMode(t, f); m != 0o600 {
			t.Errorf("%s mode %o, want 600", f, m)
		}
	}
	if got := readPEMTypes(t, crt); !slices.Equal(got, []string{"CERTIFICATE"}) {
		t.Errorf("cert PEM types %v", got)
	}
	if got := readPEMTypes(t, key); !slices.Equal(got, []string{"RSA PRIVATE KEY"}) {
		t.Errorf("key PEM types %v", got)
	}
	ca, err := loadCertificate(crt)
	if err != nil {
		t.Fatal(err)
	}
	k, err := loadPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if k.N.BitLen() != 2048 {
		t.Errorf("default key size %d", k.N.BitLen())
	}
	if !ca.IsCA || !ca.BasicConstraintsValid || ca.Subject.CommonName != "My CA" || ca.Issuer.CommonName != "My CA" {
		t.Errorf("CA fields: IsCA %v subject %s issuer %s", ca.IsCA, ca.Subject, ca.Issuer)
	}
	if ca.KeyUsage != x509.KeyUsageDigitalSignature|x509.KeyUsageCertSign {
		t.Errorf("key usage %v", ca.KeyUsage)
	}
	if !slices.Equal(ca.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth}) {
		t.Errorf("ext key usage %v", ca.ExtKeyUsage)
	}
	if s := ca.SerialNumber.Int64(); s < start.Unix() || s > time.Now().Unix() {
		t.Errorf("serial %d is not the current Unix time", s)
	}
	if !near(ca.NotBefore, start) || !near(ca.NotAfter, start.AddDate(10, 0, 0)) {
		t.Errorf("validity %v .. %v", ca.NotBefore, ca.NotAfter)
	}
	if err := ca.CheckSignatureFrom(ca); err != nil {
		t.Errorf("not self-signed: %v", err)
	}
}

func TestCertInitErrors(t *testing.T) {
	dir := t.TempDir()
	ok := CertInitOptions{CommonName: "c", Bits: 1024, OutCert: filepath.Join(dir, "c"), OutKey: filepath.Join(dir, "k")}
	tests := []struct {
		name    string
		mod     func(*CertInitOptions)
		wantErr string
	}{
		{"no common name", func(o *CertInitOptions) { o.CommonName = "" }, "must provide CommonName"},
		{"no outcert", func(o *CertInitOptions) { o.OutCert = "" }, "must provide OutCert and OutKey"},
		{"tiny key", func(o *CertInitOptions) { o.Bits = 512 }, "invalid key bits 512: must be between 1024 and 16384"},
		{"huge key", func(o *CertInitOptions) { o.Bits = 1 << 20 }, "invalid key bits 1048576: must be between 1024 and 16384"},
		{"bad notbefore", func(o *CertInitOptions) { o.NotBefore = "yesterday" }, `invalid notbefore "yesterday"`},
		{"bad notafter", func(o *CertInitOptions) { o.NotAfter = "2030-01-01" }, `invalid notafter "2030-01-01"`},
		{"reversed", func(o *CertInitOptions) { o.NotBefore, o.NotAfter = "2030-01-01T00:00:00Z", "2029-01-01T00:00:00Z" },
			"notafter 2029-01-01T00:00:00Z is not after notbefore 2030-01-01T00:00:00Z"},
		{"unwritable", func(o *CertInitOptions) { o.OutCert = filepath.Join(dir, "no", "such", "dir") }, "writing "},
	}
	for _, tt := range tests {
		o := ok
		tt.mod(&o)
		if err := CertInit(o); !strings.HasPrefix(errString(err), tt.wantErr) {
			t.Errorf("%s: error %q, want prefix %q", tt.name, errString(err), tt.wantErr)
		}
	}
	o := ok
	o.NotBefore, o.NotAfter = "2020-01-02T03:04:05Z", "2040-01-02T03:04:05+01:00"
	if err := CertInit(o); err != nil {
		t.Fatal(err)
	}
	ca, err := loadCertificate(o.OutCert)
	if err != nil {
		t.Fatal(err)
	}
	if !ca.NotBefore.Equal(time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)) || !ca.NotAfter.Equal(time.Date(2040, 1, 2, 2, 4, 5, 0, time.UTC)) {
		t.Errorf("explicit validity %v .. %v", ca.NotBefore, ca.NotAfter)
	}
}

func TestCertMakeReqErrors(t *testing.T) {
	p := getPKI(t)
	dir := t.TempDir()
	twoKeys := filepath.Join(dir, "two.key")
	k1, _ := os.ReadFile(p.serverKey)
	k2, _ := os.ReadFile(p.clientKey)
	if err := os.WriteFile(twoKeys, append(k1, k2...), 0o600); err != nil {
		t.Fatal(err)
	}
	garbage := filepath.Join(dir, "garbage.key")
	if err := os.WriteFile(garbage, []byte("not pem"), 0o600); err != nil {
		t.Fatal(err)
	}
	odd := filepath.Join(dir, "odd.pem")
	if err := os.WriteFile(odd, pem.EncodeToMemory(&pem.Block{Type: "EC PARAMETERS", Bytes: []byte{1}}), 0o600); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out.csr")
	tests := []struct {
		name    string
		opts    CertMakeReqOptions
		wantErr string
	}{
		{"no key", CertMakeReqOptions{CommonName: "x", OutReq: out}, "must provide either InKey or OutKey"},
		{"both keys", CertMakeReqOptions{CommonName: "x", OutReq: out, InKey: p.serverKey, OutKey: "k"}, "cannot use both InKey and OutKey"},
		{"bits with inkey", CertMakeReqOptions{CommonName: "x", OutReq: out, InKey: p.serverKey, Bits: 2048},
			"cannot specify key bits when reading an already-existing key"},
		{"outkey without bits", CertMakeReqOptions{CommonName: "x", OutReq: out, OutKey: "k"}, "must specify key bits when creating a new key"},
		{"bad ip", CertMakeReqOptions{CommonName: "x", OutReq: out, InKey: p.serverKey, IPAddress: []string{"127.0.0.1", "1.2.3"}},
			"invalid IP address: 1.2.3"},
		{"no common name", CertMakeReqOptions{OutReq: out, InKey: p.serverKey}, "must provide CommonName"},
		{"no outreq", CertMakeReqOptions{CommonName: "x", InKey: p.serverKey}, "must provide OutReq"},
		{"two keys", CertMakeReqOptions{CommonName: "x", OutReq: out, InKey: twoKeys}, "multiple private keys in file " + twoKeys},
		{"no key in file", CertMakeReqOptions{CommonName: "x", OutReq: out, InKey: p.serverCert}, "no private keys in file " + p.serverCert},
		{"garbage key file", CertMakeReqOptions{CommonName: "x", OutReq: out, InKey: garbage}, garbage + ": failed to decode PEM block"},
		{"unknown block", CertMakeReqOptions{CommonName: "x", OutReq: out, InKey: odd}, odd + ": unknown block type EC PARAMETERS"},
		{"bad dns", CertMakeReqOptions{CommonName: "x", OutReq: out, InKey: p.serverKey, DNSName: []string{"é"}}, `invalid DNS name "é": not ASCII`},
	}
	for _, tt := range tests {
		err := CertMakeReq(tt.opts)
		if errString(err) != tt.wantErr {
			t.Errorf("%s: error %q\nwant  %q", tt.name, errString(err), tt.wantErr)
		}
	}
}

func TestCertMakeReqWithInKey(t *testing.T) {
	p := getPKI(t)
	out := filepath.Join(t.TempDir(), "r.csr")
	err := CertMakeReq(CertMakeReqOptions{CommonName: "again", InKey: p.serverKey, OutReq: out,
		DNSName: []string{"a.example", "b.example"}, IPAddress: []string{"10.1.2.3", "fe80::1"}, NodeID: []string{"n1", "n2"}})
	if err != nil {
		t.Fatal(err)
	}
	if m := fileMode(t, out); m != 0o600 {
		t.Errorf("mode %o", m)
	}
	if got := readPEMTypes(t, out); !slices.Equal(got, []string{"CERTIFICATE REQUEST"}) {
		t.Errorf("PEM types %v", got)
	}
	req, err := loadRequest(out)
	if err != nil {
		t.Fatal(err)
	}
	key, err := loadPrivateKey(p.serverKey)
	if err != nil {
		t.Fatal(err)
	}
	if !key.PublicKey.Equal(req.PublicKey) {
		t.Error("request does not use the given key")
	}
	ids, err := NodeIDsFromCSR(req)
	if err != nil || !slices.Equal(ids, []string{"n1", "n2"}) {
		t.Errorf("node IDs %q, %v", ids, err)
	}
	if !slices.Equal(req.DNSNames, []string{"a.example", "b.example"}) || len(req.IPAddresses) != 2 || req.Subject.CommonName != "again" {
		t.Errorf("request names %v %v %s", req.DNSNames, req.IPAddresses, req.Subject)
	}
}

func TestCertSignReq(t *testing.T) {
	p := getPKI(t)
	start := time.Now()
	ca, err := loadCertificate(p.caCert)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := loadCertificate(p.serverCert)
	if err != nil {
		t.Fatal(err)
	}
	req, err := loadRequest(strings.TrimSuffix(p.serverCert, ".crt") + ".csr")
	if err != nil {
		t.Fatal(err)
	}
	if cert.IsCA || cert.KeyUsage != x509.KeyUsageDigitalSignature {
		t.Errorf("IsCA %v key usage %v", cert.IsCA, cert.KeyUsage)
	}
	if !slices.Equal(cert.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth}) {
		t.Errorf("ext key usage %v", cert.ExtKeyUsage)
	}
	if cert.Issuer.String() != ca.Subject.String() || cert.Subject.CommonName != "server" {
		t.Errorf("issuer %s subject %s", cert.Issuer, cert.Subject)
	}
	if !near(cert.NotAfter, cert.NotBefore.AddDate(1, 0, 0)) || cert.NotBefore.After(start) {
		t.Errorf("validity %v .. %v", cert.NotBefore, cert.NotAfter)
	}
	if cert.SerialNumber.Cmp(big.NewInt(start.Unix()+1)) > 0 || cert.SerialNumber.Int64() < start.Add(-time.Hour).Unix() {
		t.Errorf("serial %v", cert.SerialNumber)
	}
	// The SAN extension is the request's, byte for byte.
	if got, want := extValue(cert.Extensions), extValue(req.Extensions); want == nil || !bytes.Equal(got, want) {
		t.Errorf("SAN %x, request SAN %x", got, want)
	}
	// Go's verifier accepts it the way upstream's verify callback uses it.
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
			t.Errorf("verify for %v: %v", usage, err)
		}
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, DNSName: "localhost"}); err != nil {
		t.Errorf("verify DNS: %v", err)
	}
}

func extValue(exts []pkix.Extension) []byte {
	for _, e := range exts {
		if e.Id.Equal(OIDSubjectAltName) {
			return e.Value
		}
	}
	return nil
}

func TestCertSignReqPrompt(t *testing.T) {
	p := getPKI(t)
	dir := t.TempDir()
	csr := filepath.Join(dir, "n.csr")
	if err := CertMakeReq(CertMakeReqOptions{CommonName: "node5", InKey: p.clientKey, OutReq: csr,
		DNSName: []string{"n5.example"}, IPAddress: []string{"192.0.2.5"}, NodeID: []string{"node5"}}); err != nil {
		t.Fatal(err)
	}
	wantPrompt := "Requested certificate:\n" +
		"  Subject: CN=node5\n" +
		fmt.Sprintf("  Encryption Algorithm: RSA (%d bits)\n", fixtureBits) +
		"  Signature Algorithm: SHA256-RSA\n" +
		"  Names:\n" +
		"    DNS Name: n5.example\n" +
		"    IP Address: 192.0.2.5\n" +
		"    Receptor Node ID: node5\n" +
		"Sign certificate (yes/no)? "
	tests := []struct {
		input   string
		wantErr string
	}{
		{"yes\n", ""},
		{"Y\n", ""},
		{"  YES  \r\n", ""},
		{"yes", ""}, // EOF ends the line
		{"no\n", "user declined"},
		{"\n", "user declined"},
		{"", "user declined"},
		{"yes please\n", "user declined"},
		{strings.Repeat("y", 1000), "user declined"},
	}
	for i, tt := range tests {
		out := filepath.Join(dir, fmt.Sprintf("n%d.crt", i))
		var prompt bytes.Buffer
		in := strings.NewReader(tt.input + "after")
		if !strings.HasSuffix(tt.input, "\n") {
			in = strings.NewReader(tt.input)
		}
		err := CertSignReq(CertSignReqOptions{Req: csr, CACert: p.caCert, CAKey: p.caKey, OutCert: out}, in, &prompt)
		if errString(err) != tt.wantErr {
			t.Errorf("input %q: error %q, want %q", tt.input, errString(err), tt.wantErr)
		}
		if prompt.String() != wantPrompt {
			t.Errorf("prompt:\n%s\nwant:\n%s", prompt.String(), wantPrompt)
		}
		_, statErr := os.Stat(out)
		if (statErr == nil) != (tt.wantErr == "") {
			t.Errorf("input %q: certificate written = %v", tt.input, statErr == nil)
		}
		if strings.HasSuffix(tt.input, "\n") && in.Len() != len("after") {
			t.Errorf("input %q: read past the answer line", tt.input)
		}
	}
}

func TestCertSignReqErrors(t *testing.T) {
	p := getPKI(t)
	dir := t.TempDir()
	noNames := filepath.Join(dir, "nonames.csr")
	if err := CertMakeReq(CertMakeReqOptions{CommonName: "anon", InKey: p.clientKey, OutReq: noNames}); err != nil {
		t.Fatal(err)
	}
	twoCerts := filepath.Join(dir, "two.crt")
	c1, _ := os.ReadFile(p.caCert)
	c2, _ := os.ReadFile(p.otherCACert)
	if err := os.WriteFile(twoCerts, append(c1, c2...), 0o600); err != nil {
		t.Fatal(err)
	}
	// A request whose signature no longer matches its content.
	tampered := filepath.Join(dir, "tampered.csr")
	good, err := loadRequest(strings.TrimSuffix(p.serverCert, ".crt") + ".csr")
	if err != nil {
		t.Fatal(err)
	}
	raw := bytes.Clone(good.Raw)
	raw[len(raw)-5] ^= 0xff
	if err := os.WriteFile(tampered, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	goodCSR := strings.TrimSuffix(p.serverCert, ".crt") + ".csr"
	out := filepath.Join(dir, "out.crt")
	base := CertSignReqOptions{Req: goodCSR, CACert: p.caCert, CAKey: p.caKey, OutCert: out, Verify: true}
	tests := []struct {
		name    string
		mod     func(*CertSignReqOptions)
		wantErr string
	}{
		{"no names", func(o *CertSignReqOptions) { o.Req = noNames }, "cannot sign: no names found in certificate"},
		{"two CA certs", func(o *CertSignReqOptions) { o.CACert = twoCerts }, "certificate file should contain exactly one item"},
		{"CA cert is a key", func(o *CertSignReqOptions) { o.CACert = p.caKey }, "certificate file does not contain certificate data"},
		{"CA key is a cert", func(o *CertSignReqOptions) { o.CAKey = p.caCert }, "private key file does not contain private key data"},
		{"req is a cert", func(o *CertSignReqOptions) { o.Req = p.serverCert }, "certificate request file does not contain certificate request data"},
		{"tampered request", func(o *CertSignReqOptions) { o.Req = tampered }, "certificate request " + tampered + ": "},
		{"CA key mismatch", func(o *CertSignReqOptions) { o.CAKey = p.otherCAKey }, "signing certificate request "},
		{"bad notafter", func(o *CertSignReqOptions) { o.NotAfter = "soon" }, `invalid notafter "soon"`},
		{"missing option", func(o *CertSignReqOptions) { o.OutCert = "" }, "must provide Req, CACert, CAKey and OutCert"},
	}
	for _, tt := range tests {
		o := base
		tt.mod(&o)
		err := CertSignReq(o, nil, nil)
		if !strings.HasPrefix(errString(err), tt.wantErr) {
			t.Errorf("%s: error %q, want prefix %q", tt.name, errString(err), tt.wantErr)
		}
	}
	o := base
	o.NotBefore, o.NotAfter = "2024-05-01T00:00:00Z", "2024-06-01T00:00:00Z"
	if err := CertSignReq(o, nil, nil); err != nil {
		t.Fatal(err)
	}
	c, err := loadCertificate(out)
	if err != nil {
		t.Fatal(err)
	}
	if !c.NotBefore.Equal(time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)) || !c.NotAfter.Equal(time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("explicit validity %v .. %v", c.NotBefore, c.NotAfter)
	}
	if _, ok := c.PublicKey.(*rsa.PublicKey); !ok {
		t.Errorf("public key %T", c.PublicKey)
	}
}

// openssl must accept what the cert commands produce.
func TestOpenSSLAccepts(t *testing.T) {
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl not on PATH")
	}
	p := getPKI(t)
	run := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(openssl, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	caText := run("x509", "-in", p.caCert, "-noout", "-text")
	for _, want := range []string{"CA:TRUE", "Certificate Sign", "TLS Web Client Authentication, TLS Web Server Authentication", "Subject: CN"} {
		if !strings.Contains(caText, want) {
			t.Errorf("CA text lacks %q:\n%s", want, caText)
		}
	}
	leafText := run("x509", "-in", p.serverCert, "-noout", "-text")
	for _, want := range []string{"DNS:localhost", "IP Address:127.0.0.1", "CA:FALSE", "Digital Signature"} {
		if !strings.Contains(leafText, want) {
			t.Errorf("leaf text lacks %q:\n%s", want, leafText)
		}
	}
	reqOut := run("req", "-in", strings.TrimSuffix(p.serverCert, ".crt")+".csr", "-noout", "-verify")
	if !strings.Contains(reqOut, "verify OK") {
		t.Errorf("openssl req -verify: %s", reqOut)
	}
	for _, leaf := range []string{p.serverCert, p.clientCert, p.multiCert} {
		if out := run("verify", "-CAfile", p.caCert, leaf); !strings.Contains(out, ": OK") {
			t.Errorf("openssl verify %s: %s", leaf, out)
		}
	}
	for _, key := range []string{p.caKey, p.serverKey} {
		run("rsa", "-in", key, "-check", "-noout")
	}
	// A certificate from the other CA must not verify (the check can fail).
	if out, err := exec.Command(openssl, "verify", "-CAfile", p.caCert, p.otherCert).CombinedOutput(); err == nil {
		t.Errorf("openssl verified a foreign certificate: %s", out)
	}
}
