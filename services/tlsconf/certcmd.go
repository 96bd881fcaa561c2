package tlsconf

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"strings"
	"time"
)

// RSA key size limits for the cert commands; the upper bound keeps a typo
// from running key generation for hours.
const (
	defaultKeyBits = 2048
	minKeyBits     = 1024
	maxKeyBits     = 16384
	maxAnswerLen   = 256 // bytes read for the signreq confirmation
)

// CertInitOptions mirror the cert-init entity.
type CertInitOptions struct {
	CommonName string
	Bits       int    // 0 means 2048
	NotBefore  string // RFC 3339; empty = now
	NotAfter   string // RFC 3339; empty = now + 10 years
	OutCert    string
	OutKey     string
}

// CertMakeReqOptions mirror the cert-makereq entity. Exactly one of InKey
// and OutKey is set; Bits goes with OutKey only.
type CertMakeReqOptions struct {
	CommonName string
	Bits       int
	DNSName    []string
	IPAddress  []string
	NodeID     []string
	OutReq     string
	InKey      string
	OutKey     string
}

// CertSignReqOptions mirror the cert-signreq entity.
type CertSignReqOptions struct {
	Req       string
	CACert    string
	CAKey     string
	NotBefore string // RFC 3339; empty = now
	NotAfter  string // RFC 3339; empty = now + 1 year
	OutCert   string
	Verify    bool // true: sign without asking
}

// CertInit creates a self-signed RSA CA and writes its certificate and key.
func CertInit(opts CertInitOptions) error {
	if opts.CommonName == "" {
		return errors.New("must provide CommonName")
	}
	if opts.OutCert == "" || opts.OutKey == "" {
		return errors.New("must provide OutCert and OutKey")
	}
	bits, err := keyBits(opts.Bits)
	if err != nil {
		return err
	}
	now := time.Now()
	notBefore, err := parseTimeOr(opts.NotBefore, "notbefore", now)
	if err != nil {
		return err
	}
	notAfter, err := parseTimeOr(opts.NotAfter, "notafter", now.AddDate(10, 0, 0))
	if err != nil {
		return err
	}
	if !notAfter.After(notBefore) {
		return fmt.Errorf("notafter %s is not after notbefore %s", notAfter.Format(time.RFC3339), notBefore.Format(time.RFC3339))
	}
	key, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		return fmt.Errorf("generating %d-bit RSA key: %w", bits, err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(now.Unix()),
		Subject:               pkix.Name{CommonName: opts.CommonName},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return fmt.Errorf("creating CA certificate %q: %w", opts.CommonName, err)
	}
	if err := writePEM(opts.OutCert, pemCertificate, der); err != nil {
		return err
	}
	return writePEM(opts.OutKey, pemRSAKey, x509.MarshalPKCS1PrivateKey(key))
}

// Validate runs the parameter checks upstream does while loading the config.
func (o CertMakeReqOptions) Validate() error {
	switch {
	case o.InKey == "" && o.OutKey == "":
		return errors.New("must provide either InKey or OutKey")
	case o.InKey != "" && o.OutKey != "":
		return errors.New("cannot use both InKey and OutKey")
	case o.InKey != "" && o.Bits != 0:
		return errors.New("cannot specify key bits when reading an already-existing key")
	case o.OutKey != "" && o.Bits == 0:
		return errors.New("must specify key bits when creating a new key")
	}
	return nil
}

// CertMakeReq writes a certificate request whose subjectAltName carries the
// DNS names, IP addresses and Receptor node IDs, with a new key (OutKey) or
// an existing one (InKey).
func CertMakeReq(opts CertMakeReqOptions) error {
	if err := opts.Validate(); err != nil {
		return err
	}
	if opts.CommonName == "" {
		return errors.New("must provide CommonName")
	}
	if opts.OutReq == "" {
		return errors.New("must provide OutReq")
	}
	ips := make([]net.IP, 0, len(opts.IPAddress))
	for _, s := range opts.IPAddress {
		ip := net.ParseIP(s)
		if ip == nil {
			return fmt.Errorf("invalid IP address: %s", s)
		}
		ips = append(ips, ip)
	}
	san, err := MarshalSAN(opts.DNSName, ips, opts.NodeID)
	if err != nil {
		return err
	}
	var key *rsa.PrivateKey
	if opts.InKey != "" {
		if key, err = loadRequestKey(opts.InKey); err != nil {
			return err
		}
	} else {
		bits, err := keyBits(opts.Bits)
		if err != nil {
			return err
		}
		if key, err = rsa.GenerateKey(rand.Reader, bits); err != nil {
			return fmt.Errorf("generating %d-bit RSA key: %w", bits, err)
		}
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject:         pkix.Name{CommonName: opts.CommonName},
		ExtraExtensions: []pkix.Extension{san},
	}, key)
	if err != nil {
		return fmt.Errorf("creating certificate request %q: %w", opts.CommonName, err)
	}
	if err := writePEM(opts.OutReq, pemRequest, der); err != nil {
		return err
	}
	if opts.OutKey != "" {
		return writePEM(opts.OutKey, pemRSAKey, x509.MarshalPKCS1PrivateKey(key))
	}
	return nil
}

// loadRequestKey picks the single RSA private key out of a PEM file that may
// hold other items too.
func loadRequestKey(path string) (*rsa.PrivateKey, error) {
	items, err := loadPEMItems(path)
	if err != nil {
		return nil, err
	}
	var key *rsa.PrivateKey
	for _, item := range items {
		k, ok := item.(*rsa.PrivateKey)
		if !ok {
			continue
		}
		if key != nil {
			return nil, fmt.Errorf("multiple private keys in file %s", path)
		}
		key = k
	}
	if key == nil {
		return nil, fmt.Errorf("no private keys in file %s", path)
	}
	return key, nil
}

// CertSignReq signs a certificate request with the CA. Unless opts.Verify,
// it prints the request to out and proceeds only if the line read from in is
// "y" or "yes" (any case).
func CertSignReq(opts CertSignReqOptions, in io.Reader, out io.Writer) error {
	if opts.Req == "" || opts.CACert == "" || opts.CAKey == "" || opts.OutCert == "" {
		return errors.New("must provide Req, CACert, CAKey and OutCert")
	}
	if out == nil {
		out = io.Discard
	}
	now := time.Now()
	notBefore, err := parseTimeOr(opts.NotBefore, "notbefore", now)
	if err != nil {
		return err
	}
	notAfter, err := parseTimeOr(opts.NotAfter, "notafter", now.AddDate(1, 0, 0))
	if err != nil {
		return err
	}
	if !notAfter.After(notBefore) {
		return fmt.Errorf("notafter %s is not after notbefore %s", notAfter.Format(time.RFC3339), notBefore.Format(time.RFC3339))
	}
	caCert, err := loadCertificate(opts.CACert)
	if err != nil {
		return err
	}
	caKey, err := loadPrivateKey(opts.CAKey)
	if err != nil {
		return err
	}
	req, err := loadRequest(opts.Req)
	if err != nil {
		return err
	}
	// Upstream skips this; a request whose signature fails was not made by
	// the holder of the key it names.
	if err := req.CheckSignature(); err != nil {
		return fmt.Errorf("certificate request %s: %w", opts.Req, err)
	}
	nodeIDs, err := NodeIDsFromCSR(req)
	if err != nil {
		return err
	}
	if len(req.DNSNames) == 0 && len(req.IPAddresses) == 0 && len(nodeIDs) == 0 {
		return errors.New("cannot sign: no names found in certificate")
	}
	if !opts.Verify {
		if err := confirmSigning(req, nodeIDs, in, out); err != nil {
			return err
		}
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(now.Unix()),
		Subject:               req.Subject,
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		BasicConstraintsValid: true,
		IsCA:                  false,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
	}
	// The request's SAN is copied byte for byte so node-ID otherNames survive.
	for _, ext := range req.Extensions {
		if ext.Id.Equal(OIDSubjectAltName) {
			tmpl.ExtraExtensions = []pkix.Extension{ext}
			break
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, req.PublicKey, caKey)
	if err != nil {
		return fmt.Errorf("signing certificate request %s: %w", opts.Req, err)
	}
	return writePEM(opts.OutCert, pemCertificate, der)
}

func confirmSigning(req *x509.CertificateRequest, nodeIDs []string, in io.Reader, out io.Writer) error {
	algo := req.PublicKeyAlgorithm.String()
	if rsaKey, ok := req.PublicKey.(*rsa.PublicKey); ok {
		algo = fmt.Sprintf("%s (%d bits)", algo, rsaKey.Size()*8)
	}
	var b strings.Builder
	b.WriteString("Requested certificate:\n")
	fmt.Fprintf(&b, "  Subject: %s\n", req.Subject)
	fmt.Fprintf(&b, "  Encryption Algorithm: %s\n", algo)
	fmt.Fprintf(&b, "  Signature Algorithm: %s\n", req.SignatureAlgorithm)
	b.WriteString("  Names:\n")
	for _, name := range req.DNSNames {
		fmt.Fprintf(&b, "    DNS Name: %s\n", name)
	}
	for _, ip := range req.IPAddresses {
		fmt.Fprintf(&b, "    IP Address: %v\n", ip)
	}
	for _, id := range nodeIDs {
		fmt.Fprintf(&b, "    Receptor Node ID: %s\n", id)
	}
	b.WriteString("Sign certificate (yes/no)? ")
	if _, err := io.WriteString(out, b.String()); err != nil {
		return fmt.Errorf("writing signing prompt: %w", err)
	}
	if in == nil {
		return errors.New("user declined")
	}
	answer, err := readLine(in, maxAnswerLen)
	if err != nil {
		return fmt.Errorf("reading signing confirmation: %w", err)
	}
	switch strings.ToLower(strings.TrimSpace(answer)) {
	case "y", "yes":
		return nil
	default:
		return errors.New("user declined")
	}
}

// readLine reads up to the first newline, one byte at a time so nothing
// after it is consumed from a shared stdin. EOF ends the line.
func readLine(r io.Reader, limit int) (string, error) {
	var line []byte
	var buf [1]byte
	for len(line) < limit {
		n, err := r.Read(buf[:])
		if n == 1 {
			if buf[0] == '\n' {
				return string(line), nil
			}
			line = append(line, buf[0])
		}
		if errors.Is(err, io.EOF) {
			return string(line), nil
		}
		if err != nil {
			return "", err
		}
	}
	return string(line), nil
}

func keyBits(bits int) (int, error) {
	if bits == 0 {
		return defaultKeyBits, nil
	}
	if bits < minKeyBits || bits > maxKeyBits {
		return 0, fmt.Errorf("invalid key bits %d: must be between %d and %d", bits, minKeyBits, maxKeyBits)
	}
	return bits, nil
}

func parseTimeOr(s, param string, def time.Time) (time.Time, error) {
	if s == "" {
		return def, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("invalid %s %q: %w", param, s, err)
	}
	return t, nil
}
