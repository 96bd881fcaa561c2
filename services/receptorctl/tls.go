package receptorctl

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"

	"github.com/receptor-mesh/receptor/services/config"
	"github.com/receptor-mesh/receptor/services/control/client"
	"github.com/receptor-mesh/receptor/services/tlsconf"
)

// tlsConfig builds the client TLS configuration from --rootcas, --cert,
// --key and --insecureskipverify, or from the tls-client named by
// --tls-client in the receptor config given with --config (the Python
// receptorctl's rules: not both; --config needs --tls-client). nil when
// no TLS setting is given (a tls:// socket then uses the system roots).
func (a *app) tlsConfig() (*tls.Config, error) {
	opts := tlsconf.ClientOptions{
		Cert: a.cert, Key: a.key, RootCAs: a.rootCAs, InsecureSkipVerify: bool(a.insecure),
		// The node's certificate names it; ours is a user's, not a node's.
		SkipReceptorNamesCheck: true,
	}
	if a.config != "" {
		if a.rootCAs != "" || a.key != "" || a.cert != "" {
			return nil, usageError(errors.New("Cannot specify both config and rootcas, key, cert")) //nolint:staticcheck // receptorctl's text
		}
		if a.tlsClient == "" {
			return nil, usageError(errors.New("Must specify both config and tlsclient")) //nolint:staticcheck // receptorctl's text
		}
		cfg, err := config.LoadFile(a.config, nil)
		if err != nil {
			return nil, usageError(fmt.Errorf("reading --config: %w", err))
		}
		found := false
		for _, c := range cfg.TLSClients {
			if c.Name == a.tlsClient {
				opts.Cert, opts.Key, opts.RootCAs = c.Cert, c.Key, c.RootCAs
				opts.InsecureSkipVerify = c.InsecureSkipVerify
				opts.PinnedServerCert = c.PinnedServerCert
				opts.MinTLS13 = c.MinTLS13
				found = true
				break
			}
		}
		if !found {
			return nil, withCode(ExitNotFound, fmt.Errorf("unknown TLS config %s in %s", a.tlsClient, a.config))
		}
	} else if opts.Cert == "" && opts.Key == "" && opts.RootCAs == "" && !opts.InsecureSkipVerify {
		return defaultTLS(a), nil
	}
	cfg, err := tlsconf.NewClientConfig(opts, "")
	if err != nil {
		return nil, usageError(err)
	}
	if opts.InsecureSkipVerify {
		// As receptorctl (Python's ssl with check_hostname off): the
		// chain is still verified against the roots, the name is not.
		roots := cfg.RootCAs
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("server sent no certificate")
			}
			inter := x509.NewCertPool()
			for _, c := range cs.PeerCertificates[1:] {
				inter.AddCert(c)
			}
			_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter})
			return err
		}
	}
	return cfg, nil
}

// defaultTLS is the configuration of a tls:// socket without TLS flags:
// system roots. For other addresses it is nil (plain TCP or unix socket;
// gRPC to a loopback host without TLS).
func defaultTLS(a *app) *tls.Config {
	if a.socket == "" {
		return nil
	}
	if network, _, err := client.ParseAddress(a.socket); err != nil || network != "tls" {
		return nil
	}
	return tlsconf.NewBaseConfig()
}
