// Package testkit is support code for tests only: the one polling helper
// (Eventually, Poll), the one in-memory test PKI (NewCA, SelfSigned), the
// PKI made with Receptor's own certificate commands (CommandPKI), and the
// child-process handling of the tests that run binaries (StartProcess). No
// production package may import it.
//
// It is public rather than under services/internal because the tests of the
// real binaries in integration/ import it too.
package testkit
