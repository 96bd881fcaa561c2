// Package tlsconf builds the TLS configurations a Receptor node uses: named
// tls-server and tls-client configs (mesh spec §15.1), the Receptor node-ID
// subjectAltName (§15.2), node-ID peer verification (§15.3), the insecure
// QUIC certificate scheme (§16.4), and the exclusive cert-init, cert-makereq
// and cert-signreq commands (control spec §6.12).
//
// Differences from upstream, all stricter or fixes the spec allows:
//   - Long node IDs get correct DER in requests (§18 may-fix 7); upstream's
//     malformed encoding is rejected when parsed, as upstream rejects it.
//   - Stream listeners with requireclientcert also honour pinnedclientcert
//     (§18 may-fix 6); elsewhere pins apply exactly where upstream applies them.
//   - An empty or certificate-less clientcas/rootcas bundle is a startup error.
//   - cert-signreq checks the request's self-signature, adds CA:FALSE basic
//     constraints, and treats an empty or unreadable answer as "user declined".
//   - Key sizes outside 1024..16384 bits are refused.
//
// Kept upstream quirks: clientcas without requireclientcert still rejects
// clients that send no certificate (§18 may-fix 5 not taken), and the
// self-check error says "server cert=" for client configs too.
package tlsconf
