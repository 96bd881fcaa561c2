package integration

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/receptor-mesh/receptor/services/testkit"
)

// Failure bounds for work tests: a unit's whole life, and one bulk
// transfer (100 MiB through a loaded 2-core machine with -race).
const (
	workUnitTimeout     = 90 * time.Second
	workTransferTimeout = 3 * time.Minute
)

// workUnitState is a unit's State number (docs/protocol.md §13.4).
const (
	workPending   = 0
	workRunning   = 1
	workSucceeded = 2
	workFailed    = 3
	workCanceled  = 4
)

// workUnitStatus is one status object of `work status` / `work list`.
type workUnitStatus struct {
	State      int
	StateName  string
	Detail     string
	StdoutSize int64
	WorkType   string
	ExtraData  json.RawMessage
}

// workRemoteExtra is the ExtraData of a remote unit (the fields tests use).
type workRemoteExtra struct {
	RemoteNode    string
	RemoteUnitID  string
	RemoteStarted bool
}

// workPayload is a deterministic pseudo-random byte stream of size bytes:
// tests compare checksums without holding large payloads in memory.
func workPayload(seed uint64, size int64) io.Reader {
	var key [32]byte
	for i := range 8 {
		key[i] = byte(seed >> (8 * i))
	}
	return io.LimitReader(rand.NewChaCha8(key), size)
}

// workDigest is the sha256 (hex) and length of r.
func workDigest(t *testing.T, r io.Reader) (string, int64) {
	t.Helper()
	h := sha256.New()
	n, err := io.Copy(h, r)
	if err != nil {
		t.Fatalf("hashing: %v", err)
	}
	return hex.EncodeToString(h.Sum(nil)), n
}

// workConn is one control session on a node's socket, spoken byte for byte
// as receptorctl does (docs/protocol.md §12.2).
type workConn struct {
	t  *testing.T
	c  *net.UnixConn
	br *bufio.Reader
}

// workDial opens a control session on sock and checks the greeting.
func workDial(t *testing.T, sock, nodeID string) *workConn {
	t.Helper()
	c, err := net.DialTimeout("unix", sock, commandTimeout)
	if err != nil {
		t.Fatalf("dial control socket %s: %v", sock, err)
	}
	wc := &workConn{t: t, c: c.(*net.UnixConn), br: bufio.NewReader(c)}
	if got, want := wc.line(commandTimeout), "Receptor Control, node "+nodeID; got != want {
		wc.close()
		t.Fatalf("greeting on %s: got %q, want %q", sock, got, want)
	}
	return wc
}

func (w *workConn) close() { _ = w.c.Close() }

func (w *workConn) send(s string) {
	w.t.Helper()
	_ = w.c.SetWriteDeadline(time.Now().Add(commandTimeout))
	if _, err := w.c.Write([]byte(s)); err != nil {
		w.t.Fatalf("write %q: %v", truncate(s), err)
	}
}

// line reads one reply line (without "\n") within timeout.
func (w *workConn) line(timeout time.Duration) string {
	w.t.Helper()
	_ = w.c.SetReadDeadline(time.Now().Add(timeout))
	s, err := w.br.ReadString('\n')
	if err != nil {
		w.t.Fatalf("read reply line: %v (partial %q)", err, truncate(s))
	}
	return strings.TrimSuffix(s, "\n")
}

// workCommand sends one line on a fresh session and returns the reply line.
func workCommand(t *testing.T, sock, nodeID, line string) string {
	t.Helper()
	w := workDial(t, sock, nodeID)
	defer w.close()
	w.send(line + "\n")
	return w.line(commandTimeout)
}

var workCreatedRE = regexp.MustCompile(`^Work unit created with ID ([a-zA-Z0-9]+)\. Send stdin data and EOF\.$`)

// workSubmit submits work with a JSON request (every member a string, as
// receptorctl sends it), streams payload as stdin, half-closes and returns
// the unit ID and the final reply line. It fails the test on any ERROR.
func workSubmit(t *testing.T, sock, nodeID string, members map[string]string, payload io.Reader) (id, final string) {
	t.Helper()
	id, final, err := workTrySubmit(sock, nodeID, members, payload)
	if err != nil {
		t.Fatalf("work submit %v on %s: %v", members, nodeID, err)
	}
	return id, final
}

// workTrySubmit is workSubmit returning errors instead of failing, for use
// from many goroutines.
func workTrySubmit(sock, nodeID string, members map[string]string, payload io.Reader) (id, final string, err error) {
	c, err := net.DialTimeout("unix", sock, commandTimeout)
	if err != nil {
		return "", "", fmt.Errorf("dial %s: %w", sock, err)
	}
	defer c.Close()
	uc := c.(*net.UnixConn)
	_ = uc.SetDeadline(time.Now().Add(workTransferTimeout))
	br := bufio.NewReader(uc)
	readLine := func() (string, error) {
		s, err := br.ReadString('\n')
		if err != nil {
			return s, fmt.Errorf("reading reply (partial %q): %w", truncate(s), err)
		}
		return strings.TrimSuffix(s, "\n"), nil
	}
	if g, err := readLine(); err != nil || !strings.HasPrefix(g, "Receptor Control, node "+nodeID) {
		return "", "", fmt.Errorf("greeting %q: %v", g, err)
	}
	req := map[string]string{"command": "work", "subcommand": "submit"}
	for k, v := range members {
		req[k] = v
	}
	b, err := json.Marshal(req)
	if err != nil {
		return "", "", err
	}
	if _, err := uc.Write(append(b, '\n')); err != nil {
		return "", "", fmt.Errorf("writing request: %w", err)
	}
	created, err := readLine()
	if err != nil {
		return "", "", err
	}
	m := workCreatedRE.FindStringSubmatch(created)
	if m == nil {
		return "", created, fmt.Errorf("submit reply %q", created)
	}
	id = m[1]
	if payload != nil {
		if _, err := io.Copy(uc, payload); err != nil {
			return id, "", fmt.Errorf("sending stdin of %s: %w", id, err)
		}
	}
	if err := uc.CloseWrite(); err != nil {
		return id, "", fmt.Errorf("half-close after stdin of %s: %w", id, err)
	}
	final, err = readLine()
	if err != nil {
		return id, "", err
	}
	var res struct{ Result, Unitid string }
	if err := json.Unmarshal([]byte(final), &res); err != nil || res.Unitid != id ||
		(res.Result != "Job Started" && res.Result != "Job Submitted") {
		return id, final, fmt.Errorf("final submit reply %q for unit %s", final, id)
	}
	return id, final, nil
}

// workStatus runs `work status <id>`; errLine is the ERROR reply, if any.
func workStatus(t *testing.T, sock, nodeID, id string) (st workUnitStatus, errLine string) {
	t.Helper()
	reply := workCommand(t, sock, nodeID, "work status "+id)
	if strings.HasPrefix(reply, "ERROR: ") {
		return st, reply
	}
	if err := json.Unmarshal([]byte(reply), &st); err != nil {
		t.Fatalf("work status %s: decoding %q: %v", id, truncate(reply), err)
	}
	return st, ""
}

// workList runs `work list`.
func workList(t *testing.T, sock, nodeID string) map[string]workUnitStatus {
	t.Helper()
	reply := workCommand(t, sock, nodeID, "work list")
	var m map[string]workUnitStatus
	if err := json.Unmarshal([]byte(reply), &m); err != nil {
		t.Fatalf("work list: decoding %q: %v", truncate(reply), err)
	}
	return m
}

// workWaitState polls `work status` until the unit reaches state (or any
// other final state, which fails the test).
func workWaitState(t *testing.T, sock, nodeID, id string, state int) workUnitStatus {
	t.Helper()
	var last workUnitStatus
	var lastErr string
	ok := testkit.Poll(workUnitTimeout, func() bool {
		last, lastErr = workStatus(t, sock, nodeID, id)
		if lastErr != "" {
			return false
		}
		if last.State != state && (last.State == workSucceeded || last.State == workFailed ||
			(last.State == workCanceled && state != workCanceled)) {
			t.Fatalf("unit %s on %s ended in state %d (%s, %q), want %d", id, nodeID, last.State, last.StateName, last.Detail, state)
		}
		return last.State == state
	})
	if !ok {
		t.Fatalf("unit %s on %s: state %d not reached within %v; last %+v %s", id, nodeID, state, workUnitTimeout, last, lastErr)
	}
	return last
}

// workResults streams `work results <id>` and returns the digest and size
// of everything after the header (the stream ends when the node closes it).
func workResults(t *testing.T, sock, nodeID, id string) (string, int64) {
	t.Helper()
	sum, n, err := workTryResults(sock, nodeID, id)
	if err != nil {
		t.Fatalf("work results %s on %s: %v", id, nodeID, err)
	}
	return sum, n
}

// workTryResults is workResults returning errors, for use from goroutines.
func workTryResults(sock, nodeID, id string) (string, int64, error) {
	c, err := net.DialTimeout("unix", sock, commandTimeout)
	if err != nil {
		return "", 0, fmt.Errorf("dial %s: %w", sock, err)
	}
	defer c.Close()
	uc := c.(*net.UnixConn)
	_ = uc.SetDeadline(time.Now().Add(workTransferTimeout))
	br := bufio.NewReader(uc)
	if g, err := br.ReadString('\n'); err != nil || !strings.HasPrefix(g, "Receptor Control, node "+nodeID) {
		return "", 0, fmt.Errorf("greeting %q: %v", g, err)
	}
	if _, err := uc.Write([]byte("work results " + id + "\n")); err != nil {
		return "", 0, fmt.Errorf("writing request: %w", err)
	}
	header, err := br.ReadString('\n')
	if want := "Streaming results for work unit " + id + "\n"; err != nil || header != want {
		return "", 0, fmt.Errorf("results header %q (%v), want %q", truncate(header), err, want)
	}
	// receptorctl half-closes right after the header.
	if err := uc.CloseWrite(); err != nil {
		return "", 0, fmt.Errorf("half-close: %w", err)
	}
	h := sha256.New()
	n, err := io.Copy(h, br)
	if err != nil {
		return "", n, fmt.Errorf("reading results after %d bytes: %w", n, err)
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// workUnitDir is where a node stores a unit: <datadir>/<node id>/<unit id>.
func workUnitDir(datadir, nodeID, id string) string { return filepath.Join(datadir, nodeID, id) }

// workFileSize is the size of path, or -1 when it does not exist.
func workFileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return -1
	}
	return fi.Size()
}

// workProcessGone reports whether pid no longer runs (gone, or a zombie
// that nobody reaped yet: it runs no more code).
func workProcessGone(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return errors.Is(err, os.ErrNotExist)
	}
	// Field 3 follows the parenthesised command name.
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] == 'Z' || s[i+2] == 'X'
	}
	return false
}

// workCommandEntity is a work-command entity for nodeYAML.
func workCommandEntity(worktype, command, params string, allowRuntime bool) string {
	kv := []string{"worktype", worktype, "command", command}
	if params != "" {
		kv = append(kv, "params", yamlQuote(params))
	}
	if allowRuntime {
		kv = append(kv, "allowruntimeparams", "true")
	}
	return entity("work-command", kv...)
}

// workTestdata is the absolute path of a file in testdata/work.
func workTestdata(t *testing.T, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("testdata", "work", name))
	if err != nil {
		t.Fatalf("testdata path: %v", err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("testdata: %v", err)
	}
	return p
}

// workResultsCallLog is how a node's debug log records one results stream
// served by its work agent.
const workResultsCallLog = "method=/receptor.work.v1.WorkService/GetResults "

// workLogCount counts the occurrences of s in the node's log.
func workLogCount(t *testing.T, n *Node, s string) int {
	t.Helper()
	b, err := os.ReadFile(n.Log)
	if err != nil {
		t.Fatalf("log of %s: %v", n.ID, err)
	}
	return strings.Count(string(b), s)
}

// workWaitControl waits until n knows a route to node and node's "control"
// service advertisement: remote work dials that service.
func workWaitControl(t *testing.T, n *Node, node string) {
	t.Helper()
	n.WaitStatus(fmt.Sprintf("route to %s and its control service", node), func(s Status) bool {
		if _, ok := s.RoutingTable[node]; !ok {
			return false
		}
		for _, ad := range s.Advertisements {
			if ad.NodeID == node && ad.Service == "control" {
				return true
			}
		}
		return false
	})
}
