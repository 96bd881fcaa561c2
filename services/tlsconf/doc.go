// Package tlsconf builds the TLS configurations a Receptor node uses: named
// tls-server and tls-client configs (mesh spec §15.1), the Receptor node-ID
// subjectAltName (§15.2), node-ID peer verification (§15.3), the insecure
// QUIC certificate scheme (§16.4), and the exclusive cert-init, cert-makereq
// and cert-signreq commands (control spec §6.12).
package tlsconf
