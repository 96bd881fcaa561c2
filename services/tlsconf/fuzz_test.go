package tlsconf

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// fuzzPEMSeeds are a request, a certificate and a (PKCS #8) key, made once
// per target. They use ECDSA keys: parsing an RSA private key checks the
// key at a cost of milliseconds, which the fuzzer pays thousands of times
// when it minimizes an input; the block types are the same either way.
func fuzzPEMSeeds(f *testing.F) (req, cert, key []byte) {
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	san, err := MarshalSAN([]string{"node1.example"}, []net.IP{net.IPv4(127, 0, 0, 1)}, []string{"node1"})
	if err != nil {
		f.Fatal(err)
	}
	reqDER, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: "node1"}, ExtraExtensions: []pkix.Extension{san}}, ecKey)
	if err != nil {
		f.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ca"}, IsCA: true, BasicConstraintsValid: true}
	certDER, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &ecKey.PublicKey, ecKey)
	if err != nil {
		f.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(ecKey)
	if err != nil {
		f.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemRequest, Bytes: reqDER}),
		pem.EncodeToMemory(&pem.Block{Type: pemCertificate, Bytes: certDER}),
		pem.EncodeToMemory(&pem.Block{Type: pemPKCS8Key, Bytes: keyDER})
}

// pemBlocks splits data as loadPEMItems must: the blocks, and whether
// anything but whitespace is left over (before, between or after them).
func pemBlocks(data []byte) (blocks []*pem.Block, garbage bool) {
	for len(data) > 0 {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return blocks, len(blocks) == 0 || !isSpace(data)
		}
		blocks = append(blocks, b)
	}
	return blocks, false
}

// FuzzLoadPEMItems reads arbitrary multi-block PEM files (certificates,
// CA bundles, keys and requests of the TLS and cert-* configuration): a
// file loads exactly when every block is one of the known types and
// parses and nothing but whitespace trails the blocks; then it gives one
// item per block, of the block's type, and writing the items back gives a
// file that loads to the same items. Errors name the file.
func FuzzLoadPEMItems(f *testing.F) {
	req, cert, key := fuzzPEMSeeds(f)
	f.Add(req)
	f.Add(append(append(append([]byte{}, cert...), key...), "\n \t\n"...))
	f.Add(append(append([]byte{}, cert...), "junk"...))
	f.Add([]byte("-----BEGIN UNKNOWN-----\nAAAA\n-----END UNKNOWN-----\n"))
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"))
	f.Add([]byte(" \n"))
	f.Add([]byte{})
	path := filepath.Join(f.TempDir(), "items.pem")
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 64<<10 {
			return
		}
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		items, err := loadPEMItems(path)
		blocks, garbage := pemBlocks(data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), path+": ") {
				t.Fatalf("error %q does not name the file", err)
			}
			if !garbage {
				for _, b := range blocks {
					if _, perr := parsePEMBlock(b); perr != nil {
						return
					}
				}
				t.Fatalf("every block parses and nothing trails them, yet: %v", err)
			}
			return
		}
		if garbage || len(items) != len(blocks) {
			t.Fatalf("loaded %d items from %d blocks (garbage %v)", len(items), len(blocks), garbage)
		}
		var again []byte
		for i, it := range items {
			var typ string
			var der []byte
			switch v := it.(type) {
			case *x509.Certificate:
				typ, der = pemCertificate, v.Raw
			case *x509.CertificateRequest:
				typ, der = pemRequest, v.Raw
			case *rsa.PrivateKey:
				typ, der = blocks[i].Type, blocks[i].Bytes // PKCS #1 or #8
			default:
				typ, der = blocks[i].Type, blocks[i].Bytes
			}
			if typ != blocks[i].Type {
				t.Fatalf("block %d of type %s loaded as %T", i, blocks[i].Type, it)
			}
			again = append(again, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})...)
		}
		if err := os.WriteFile(path, again, 0o600); err != nil {
			t.Fatal(err)
		}
		back, err := loadPEMItems(path)
		if err != nil || len(back) != len(items) {
			t.Fatalf("the items written back do not load: %d items, %v", len(back), err)
		}
	})
}

// FuzzCertSignReq runs cert-signreq on arbitrary request files and
// confirmation answers with a fixed CA: it signs only a request that is
// exactly one valid, correctly self-signed CSR naming at least one DNS
// name, IP address or node ID, and only after a "y" or "yes" answer; the
// certificate it writes is the CA's, for the request's key, with the
// request's names and node IDs. Anything else is an error, never a panic.
func FuzzCertSignReq(f *testing.F) {
	req, _, _ := fuzzPEMSeeds(f)
	f.Add(req, "yes\n")
	f.Add(req, " Y \nmore")
	f.Add(req, "no\n")
	f.Add(req, "")
	f.Add(bytes.Replace(req, []byte("A"), []byte("B"), 1), "y\n")
	f.Add([]byte("-----BEGIN CERTIFICATE REQUEST-----\nMAA=\n-----END CERTIFICATE REQUEST-----\n"), "y\n")
	dir := f.TempDir()
	opts := CertSignReqOptions{Req: filepath.Join(dir, "req.pem"), CACert: filepath.Join(dir, "ca.crt"),
		CAKey: filepath.Join(dir, "ca.key"), OutCert: filepath.Join(dir, "out.crt")}
	if err := CertInit(CertInitOptions{CommonName: "fuzz CA", Bits: 1024, OutCert: opts.CACert, OutKey: opts.CAKey}); err != nil {
		f.Fatal(err)
	}
	ca, err := loadCertificate(opts.CACert)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, reqFile []byte, answer string) {
		if len(reqFile) > 64<<10 {
			return
		}
		if err := os.WriteFile(opts.Req, reqFile, 0o600); err != nil {
			t.Fatal(err)
		}
		_ = os.Remove(opts.OutCert)
		var prompt bytes.Buffer
		err := CertSignReq(opts, strings.NewReader(answer), &prompt)
		if err != nil {
			if _, serr := os.Stat(opts.OutCert); serr == nil {
				t.Fatalf("failed (%v) but wrote a certificate", err)
			}
			if err.Error() == "" {
				t.Fatal("empty error text")
			}
			return
		}
		line, _, _ := strings.Cut(answer, "\n")
		if a := strings.ToLower(strings.TrimSpace(line)); a != "y" && a != "yes" {
			t.Fatalf("signed after the answer %q", answer)
		}
		r, err := loadRequest(opts.Req)
		if err != nil || r.CheckSignature() != nil {
			t.Fatalf("signed a request that does not load or verify: %v", err)
		}
		c, err := loadCertificate(opts.OutCert)
		if err != nil {
			t.Fatalf("the certificate written does not load: %v", err)
		}
		if err := c.CheckSignatureFrom(ca); err != nil {
			t.Fatalf("the certificate is not signed by the CA: %v", err)
		}
		if pk, ok := c.PublicKey.(interface{ Equal(crypto.PublicKey) bool }); !ok || !pk.Equal(r.PublicKey) {
			t.Fatal("the certificate is not for the request's key")
		}
		reqIDs, _ := NodeIDsFromCSR(r)
		certIDs, err := NodeIDsFromCert(c)
		if err != nil || !slices.Equal(reqIDs, certIDs) || !slices.Equal(r.DNSNames, c.DNSNames) || len(r.IPAddresses) != len(c.IPAddresses) {
			t.Fatalf("names changed: node IDs %q -> %q (%v), DNS %q -> %q", reqIDs, certIDs, err, r.DNSNames, c.DNSNames)
		}
		if len(reqIDs) == 0 && len(r.DNSNames) == 0 && len(r.IPAddresses) == 0 {
			t.Fatal("signed a request without names")
		}
		if !strings.HasSuffix(prompt.String(), "Sign certificate (yes/no)? ") {
			t.Fatalf("prompt %q", prompt.String())
		}
	})
}
