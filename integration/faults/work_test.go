package faults

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"math/rand/v2"
	"regexp"
	"strings"
	"time"

	"github.com/receptor-mesh/receptor/services/control/client"
	"github.com/receptor-mesh/receptor/services/testkit"
)

// Unit states (docs/protocol.md §13.4).
const (
	statePending   = 0
	stateRunning   = 1
	stateSucceeded = 2
	stateFailed    = 3
)

// unitStatus is one status object of `work status` (docs/protocol.md §13.5).
type unitStatus struct {
	State      int
	StateName  string
	Detail     string
	StdoutSize int64
}

// payload is a deterministic pseudo-random byte stream of size bytes.
func payload(seed uint64, size int64) io.Reader {
	var key [32]byte
	for i := range 8 {
		key[i] = byte(seed >> (8 * i))
	}
	return io.LimitReader(rand.NewChaCha8(key), size)
}

// digest is the sha256 (hex) of r.
func digest(r io.Reader) string {
	h := sha256.New()
	_, _ = io.Copy(h, r)
	return hex.EncodeToString(h.Sum(nil))
}

// paced reads r in pieces of chunk bytes, sleeping pause after each, and
// closes half once half of total bytes were read: the moment a fault is
// injected in the middle of a transfer.
type paced struct {
	r     io.Reader
	chunk int
	pause time.Duration
	total int64
	n     int64
	half  chan struct{}
}

func newPaced(r io.Reader, total int64, chunk int, pause time.Duration) *paced {
	return &paced{r: r, chunk: chunk, pause: pause, total: total, half: make(chan struct{})}
}

func (p *paced) Read(b []byte) (int, error) {
	if p.n > 0 && p.pause > 0 {
		time.Sleep(p.pause)
	}
	if len(b) > p.chunk {
		b = b[:p.chunk]
	}
	n, err := p.r.Read(b)
	before := p.n
	p.n += int64(n)
	if before < p.total/2 && p.n >= p.total/2 {
		close(p.half)
	}
	return n, err
}

var createdRE = regexp.MustCompile(`^Work unit created with ID ([a-zA-Z0-9]+)\. Send stdin data and EOF\.$`)

// submit sends a JSON work submit on p's control socket, streams stdin,
// half-closes and reads the final reply. id is set as soon as the created
// line arrived, also when a later step fails.
func submit(ctx context.Context, p *proc, members map[string]string, stdin io.Reader) (id string, res client.SubmitResult, err error) {
	c, err := p.dial(ctx)
	if err != nil {
		return "", res, err
	}
	defer c.Close()
	req := map[string]string{"command": "work", "subcommand": "submit"}
	for k, v := range members {
		req[k] = v
	}
	b, _ := json.Marshal(req)
	if err := c.WriteLine(ctx, string(b)); err != nil {
		return "", res, err
	}
	line, err := c.ReadLine(ctx)
	if err != nil {
		return "", res, fmt.Errorf("read created line: %w", err)
	}
	m := createdRE.FindStringSubmatch(line)
	if m == nil {
		return "", res, fmt.Errorf("submit reply %q", line)
	}
	id = m[1]
	if err := c.SendPayload(ctx, stdin); err != nil {
		// The node may have answered before it stopped reading: show it.
		rctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		if line, rerr := c.ReadLine(rctx); rerr == nil {
			return id, res, fmt.Errorf("send stdin: %w (reply: %q)", err, line)
		}
		return id, res, fmt.Errorf("send stdin: %w", err)
	}
	line, err = c.ReadLine(ctx)
	if err != nil {
		return id, res, fmt.Errorf("read final reply: %w", err)
	}
	if msg, ok := strings.CutPrefix(line, "ERROR: "); ok {
		return id, res, &client.RemoteError{Message: msg}
	}
	if err := json.Unmarshal([]byte(line), &res); err != nil || res.UnitID != id ||
		(res.Result != "Job Started" && res.Result != "Job Submitted") {
		return id, res, fmt.Errorf("final submit reply %q", line)
	}
	return id, res, nil
}

// errAbsent is unitState's error for a unit the node does not know.
var errAbsent = errors.New("unknown work unit")

// unitState runs `work status <id>` on p.
func unitState(p *proc, id string) (unitStatus, error) {
	var st unitStatus
	raw, err := p.command("work status " + id)
	var re *client.RemoteError
	if errors.As(err, &re) && strings.HasPrefix(re.Message, "unknown work unit") {
		return st, errAbsent
	}
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(raw, &st); err != nil {
		return st, fmt.Errorf("decode status %q: %w", raw, err)
	}
	return st, nil
}

// waitState polls the unit on p until cond accepts its status (or absence,
// errAbsent), and returns the last status and error seen.
func waitState(p *proc, id string, timeout time.Duration, cond func(unitStatus, error) bool) (unitStatus, error, bool) {
	var st unitStatus
	var err error
	ok := testkit.Poll(timeout, func() bool {
		st, err = unitState(p, id)
		return cond(st, err)
	})
	return st, err, ok
}

// results is a resuming reader of a unit's results: it streams `work
// results <id> <startpos>` from p, hashing what arrives, and when a stream
// ends before size bytes (the node died, or the stream was cut) it asks
// again from the byte it holds, as a careful client does. A stream longer
// than size is corruption.
type results struct {
	p     *proc
	id    string
	size  int64
	h     hash.Hash
	n     int64
	tries int
	// pace, when set, slows the first stream down (the results phase).
	pace *paced
}

func newResults(p *proc, id string, size int64) *results {
	return &results{p: p, id: id, size: size, h: sha256.New()}
}

// fetch reads until size bytes arrived and returns their sha256.
func (r *results) fetch(ctx context.Context) (string, error) {
	var last error
	for r.n < r.size {
		if err := ctx.Err(); err != nil {
			return "", fmt.Errorf("%d of %d bytes after %d streams (last: %v): %w", r.n, r.size, r.tries, last, err)
		}
		r.tries++
		if err := r.stream(ctx); err != nil {
			last = err
			time.Sleep(100 * time.Millisecond)
		}
		if r.n > r.size {
			return "", fmt.Errorf("results of %s: %d bytes, more than the %d expected", r.id, r.n, r.size)
		}
	}
	return hex.EncodeToString(r.h.Sum(nil)), nil
}

func (r *results) stream(ctx context.Context) error {
	c, err := r.p.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	body, err := c.Results(ctx, r.id, r.n)
	if err != nil {
		return err
	}
	var src io.Reader = body
	if r.pace != nil {
		r.pace.r, src = body, r.pace
		r.pace.n = r.n
	}
	n, err := io.Copy(r.h, src)
	r.n += n
	if r.pace != nil {
		// Only the first stream is paced; its half mark stays valid.
		select {
		case <-r.pace.half:
			r.pace = nil
		default:
		}
	}
	if err != nil {
		return fmt.Errorf("stream from %d: %w", r.n-n, err)
	}
	if r.n < r.size {
		return fmt.Errorf("stream ended at %d of %d bytes", r.n, r.size)
	}
	return nil
}
