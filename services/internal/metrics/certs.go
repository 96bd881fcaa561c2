package metrics

import (
	"crypto/x509"
	"encoding/pem"
	"io"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/receptor-mesh/receptor/services/config"
)

// Cert is a configured certificate file: the entity kind and name that
// configure it.
type Cert struct {
	Entity string // "tls-server" or "tls-client"
	Name   string
	File   string
}

// CertsOf lists the certificates of cfg's tls-server and tls-client
// entities (a tls-client without a certificate is left out).
func CertsOf(cfg *config.Config) []Cert {
	var out []Cert
	for _, s := range cfg.TLSServers {
		out = append(out, Cert{Entity: "tls-server", Name: s.Name, File: s.Cert})
	}
	for _, c := range cfg.TLSClients {
		if c.Cert != "" {
			out = append(out, Cert{Entity: "tls-client", Name: c.Name, File: c.Cert})
		}
	}
	return out
}

var descCertExpiry = prometheus.NewDesc("receptor_tls_certificate_expiry_seconds",
	"Seconds until the configured certificate expires (negative once expired), read from its file when scraped; absent while the file cannot be read.",
	[]string{"entity", "name"}, nil)

// CertExpiry returns a collector of the expiry of certs. Each scrape
// reads the files again, so a certificate renewed on disk shows at once.
func CertExpiry(certs []Cert) prometheus.Collector { return certCollector{certs: certs, now: time.Now} }

type certCollector struct {
	certs []Cert
	now   func() time.Time
}

func (c certCollector) Describe(ch chan<- *prometheus.Desc) { ch <- descCertExpiry }

func (c certCollector) Collect(ch chan<- prometheus.Metric) {
	now := c.now()
	for _, cert := range c.certs {
		notAfter, err := readNotAfter(cert.File)
		if err != nil {
			continue
		}
		ch <- prometheus.MustNewConstMetric(descCertExpiry, prometheus.GaugeValue, notAfter.Sub(now).Seconds(), cert.Entity, cert.Name)
	}
}

// maxCertFile bounds what a scrape reads of a certificate file.
const maxCertFile = 1 << 20

// readNotAfter returns the NotAfter of the first certificate in a PEM file
// (the leaf of a chain).
func readNotAfter(path string) (time.Time, error) {
	f, err := os.Open(path)
	if err != nil {
		return time.Time{}, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxCertFile))
	if err != nil {
		return time.Time{}, err
	}
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			return time.Time{}, os.ErrNotExist
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return time.Time{}, err
		}
		return cert.NotAfter, nil
	}
}
