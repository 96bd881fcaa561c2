package tlsconf

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
)

// PEM block types written and read by the cert commands (docs/protocol.md §9.4).
const (
	pemCertificate = "CERTIFICATE"
	pemRequest     = "CERTIFICATE REQUEST"
	pemRSAKey      = "RSA PRIVATE KEY"
	pemPKCS8Key    = "PRIVATE KEY"
	pemPublicKey   = "PUBLIC KEY"
)

// loadPEMItems parses every block of a PEM file into certificates, requests
// and keys; like upstream, garbage or an unknown block type is an error.
func loadPEMItems(path string) ([]any, error) {
	data, err := readBounded(path)
	if err != nil {
		return nil, err
	}
	var items []any
	for len(data) > 0 {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			// Trailing whitespace after the last block is harmless.
			if len(items) > 0 && isSpace(data) {
				break
			}
			return nil, fmt.Errorf("%s: failed to decode PEM block", path)
		}
		item, err := parsePEMBlock(block)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		items = append(items, item)
	}
	return items, nil
}

func parsePEMBlock(block *pem.Block) (any, error) {
	switch block.Type {
	case pemCertificate:
		return x509.ParseCertificate(block.Bytes)
	case pemRequest:
		return x509.ParseCertificateRequest(block.Bytes)
	case pemRSAKey:
		return x509.ParsePKCS1PrivateKey(block.Bytes)
	case pemPKCS8Key:
		return x509.ParsePKCS8PrivateKey(block.Bytes)
	case pemPublicKey:
		return x509.ParsePKIXPublicKey(block.Bytes)
	default:
		return nil, fmt.Errorf("unknown block type %s", block.Type)
	}
}

func isSpace(b []byte) bool {
	for _, c := range b {
		if c != ' ' && c != '\t' && c != '\r' && c != '\n' {
			return false
		}
	}
	return true
}

// loadSingle loads a file that must hold exactly one item of type T; what
// names the item in upstream's error texts.
func loadSingle[T any](path, what string) (T, error) {
	var zero T
	items, err := loadPEMItems(path)
	if err != nil {
		return zero, err
	}
	if len(items) != 1 {
		return zero, fmt.Errorf("%s file should contain exactly one item", what)
	}
	v, ok := items[0].(T)
	if !ok {
		return zero, fmt.Errorf("%s file does not contain %s data", what, what)
	}
	return v, nil
}

func loadCertificate(path string) (*x509.Certificate, error) {
	return loadSingle[*x509.Certificate](path, "certificate")
}

func loadRequest(path string) (*x509.CertificateRequest, error) {
	return loadSingle[*x509.CertificateRequest](path, "certificate request")
}

func loadPrivateKey(path string) (*rsa.PrivateKey, error) {
	items, err := loadPEMItems(path)
	if err != nil {
		return nil, err
	}
	if len(items) != 1 {
		return nil, errors.New("private key file should contain exactly one item")
	}
	key, ok := items[0].(*rsa.PrivateKey)
	if !ok {
		return nil, errors.New("private key file does not contain private key data")
	}
	return key, nil
}

// writePEM writes one PEM block to path with mode 0600, also tightening the
// mode of a file that already existed.
func writePEM(path, blockType string, der []byte) error {
	data := pem.EncodeToMemory(&pem.Block{Type: blockType, Bytes: der})
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
