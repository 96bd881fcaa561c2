// Package tlsconf builds the TLS configurations a Receptor node uses
// (docs/protocol.md §9, §10.3): named tls-server and tls-client configs, the
// Receptor node-ID subjectAltName, node-ID peer verification, the insecure
// QUIC certificate scheme, and the exclusive cert-init, cert-makereq and
// cert-signreq commands.
//
// Differences from upstream, all stricter or fixes that keep compatibility
// (docs/protocol.md §15.2):
//   - Long node IDs get correct DER in requests (deviation M7); upstream's
//     malformed encoding is rejected when parsed, as upstream rejects it.
//   - Stream listeners with requireclientcert also honour pinnedclientcert
//     (deviation M6); elsewhere pins apply exactly where upstream applies them.
//   - An empty or certificate-less clientcas/rootcas bundle is a startup error.
//   - cert-signreq checks the request's self-signature, adds CA:FALSE basic
//     constraints, and treats an empty or unreadable answer as "user declined".
//   - Key sizes outside 1024..16384 bits are refused.
//
// Kept upstream quirks: clientcas without requireclientcert still rejects
// clients that send no certificate (deviation M5 not taken), and the
// self-check error says "server cert=" for client configs too.
package tlsconf
