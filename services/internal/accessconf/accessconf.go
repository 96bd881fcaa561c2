// Package accessconf builds a node's authz.Policy from its configuration:
// the access entities, their token files, and the REST gateway's admin
// token file, which it creates with a random token when missing.
package accessconf

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/receptor-mesh/receptor/services/config"
	"github.com/receptor-mesh/receptor/services/internal/authz"
	"github.com/receptor-mesh/receptor/services/internal/safedir"
)

// GatewayTokenName is the principal name of the REST gateway's admin
// token: callers presenting it are "token:http-gateway".
const GatewayTokenName = "http-gateway"

// maxTokenFile bounds a token file read: a token is one short line.
const maxTokenFile = 4 << 10

// Policy compiles cfg's access entities. It reads every token file; with
// an http-gateway it also ensures the gateway's admin token file exists
// (GatewayTokenPath) and grants its token admin.
func Policy(cfg *config.Config, log *slog.Logger) (*authz.Policy, error) {
	if log == nil {
		log = slog.Default()
	}
	var rules []authz.Rule
	for i, a := range cfg.Access {
		role, err := authz.ParseRole(a.Role)
		if err != nil {
			return nil, fmt.Errorf("access %d: %w", i+1, err)
		}
		r := authz.Rule{Role: role, Principals: a.Principals, MaxUnits: a.MaxUnits, MaxStdin: int64(a.MaxStdin)}
		if a.TokenFile != "" {
			tok, err := readToken(a.TokenFile)
			if err != nil {
				return nil, fmt.Errorf("access %d: tokenfile: %w", i+1, err)
			}
			r.Token, r.TokenName = tok, strings.TrimSuffix(filepath.Base(a.TokenFile), filepath.Ext(a.TokenFile))
		}
		rules = append(rules, r)
	}
	if cfg.HTTPGateway != nil {
		path := GatewayTokenPath(cfg)
		tok, created, err := ensureToken(path)
		if err != nil {
			return nil, fmt.Errorf("http-gateway: tokenfile: %w", err)
		}
		if created {
			log.Info("created the REST gateway's admin token", "tokenfile", path)
		} else {
			log.Info("REST gateway admin token", "tokenfile", path)
		}
		rules = append(rules, authz.Rule{Role: authz.RoleAdmin, Token: tok, TokenName: GatewayTokenName})
	}
	p, err := authz.New(authz.Options{Rules: rules, SelfNodeID: cfg.Node.ID, Logger: log})
	if err != nil {
		return nil, err
	}
	return p, nil
}

// GatewayTokenPath is the http-gateway's tokenfile, or by default
// "http-gateway.token" beside the first control socket, else in the node's
// data directory.
func GatewayTokenPath(cfg *config.Config) string {
	if cfg.HTTPGateway != nil && cfg.HTTPGateway.TokenFile != "" {
		return cfg.HTTPGateway.TokenFile
	}
	for _, cs := range cfg.ControlServices {
		if cs.Filename != "" {
			return filepath.Join(filepath.Dir(cs.Filename), "http-gateway.token")
		}
	}
	return filepath.Join(cfg.Node.DataDir, "http-gateway.token")
}

// readToken reads the first line of a token file, which must not be
// readable by group or others.
func readToken(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", err
	}
	if !st.Mode().IsRegular() {
		return "", fmt.Errorf("%s is not a regular file", path)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("%s has mode %v: a token file must not be accessible by group or others (chmod 600)", path, st.Mode().Perm())
	}
	buf := make([]byte, maxTokenFile+1)
	n, err := f.Read(buf)
	if err != nil && n == 0 {
		return "", fmt.Errorf("reading %s: %w", path, err)
	}
	if n > maxTokenFile {
		return "", fmt.Errorf("%s is larger than %d bytes; a token file holds one line", path, maxTokenFile)
	}
	line, _, _ := strings.Cut(string(buf[:n]), "\n")
	tok := strings.TrimSpace(line)
	if len(tok) < authz.MinTokenLen {
		return "", fmt.Errorf("%s: the token is shorter than %d characters", path, authz.MinTokenLen)
	}
	return tok, nil
}

// ensureToken reads path, or creates it (exclusively, mode 0600) holding a
// new random token. created reports the latter.
func ensureToken(path string) (tok string, created bool, err error) {
	tok, err = readToken(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return tok, false, err
	}
	if err := safedir.MkdirAll(filepath.Dir(path)); err != nil {
		return "", false, err
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", false, err
	}
	tok = base64.RawURLEncoding.EncodeToString(raw)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		// Another process created it between our read and our create.
		tok, err = readToken(path)
		return tok, false, err
	}
	if err != nil {
		return "", false, err
	}
	if _, err := f.WriteString(tok + "\n"); err != nil {
		f.Close()
		return "", false, err
	}
	return tok, true, f.Close()
}
