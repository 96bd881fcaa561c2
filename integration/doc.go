// Package integration holds the multi-process tests: they start the real
// receptor binaries on 127.0.0.1 (meshes over tcp, udp, websockets and TLS),
// speak the receptorctl protocol byte for byte on their control sockets, and
// check start-up, reload, shutdown and security behaviour from the outside.
//
// The binaries come from RECEPTOR_BIN_DIR (set by `make integration`); when
// it is unset, TestMain builds ./cmd/... into a temporary directory.
package integration
