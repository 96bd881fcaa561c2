package control

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"
)

// fakeOps is an in-memory node behind the protocol: a few work types, units
// held in memory, a ping/traceroute table and dialable test services.
type fakeOps struct {
	mu        sync.Mutex
	units     map[string]*fakeUnit
	nextID    int
	reloadErr error
	dial      map[string]func() (net.Conn, error) // "node/service" → dialer
	// streamsClosed counts WorkResults readers that were closed.
	streamsClosed int
	// lastSubmit is the last request WorkSubmit saw.
	lastSubmit WorkSubmitRequest
}

type fakeUnit struct {
	workType string
	state    int
	detail   string
	stdout   []byte
	endless  bool // results never end: emits a chunk every few ms
}

func newFakeOps() *fakeOps {
	return &fakeOps{units: map[string]*fakeUnit{}, dial: map[string]func() (net.Conn, error){}}
}

func (f *fakeOps) NodeID() string { return "nodea" }

func (f *fakeOps) Status(context.Context) (Status, error) {
	return Status{
		Advertisements: []Advertisement{{
			NodeID: "nodea", Service: "control",
			Time:         time.Date(2026, 11, 25, 15, 36, 18, 151379353, time.UTC),
			ConnType:     1,
			Tags:         map[string]string{"type": "Control Service"},
			WorkCommands: []WorkCommand{{WorkType: "cat", Secure: false}},
		}, {
			NodeID: "nodeb", Service: "<x&y>",
			Time: time.Date(2026, 11, 25, 15, 36, 18, 0, time.UTC),
		}},
		Connections:          []Connection{{NodeID: "nodeb", Cost: 1}},
		KnownConnectionCosts: map[string]map[string]float64{"nodea": {"nodeb": 1}, "nodeb": {"nodea": 1.5}},
		NodeID:               "nodea",
		RoutingTable:         map[string]string{"nodeb": "nodeb"},
		SystemCPUCount:       2,
		SystemMemoryMiB:      24105,
		Version:              "1.5.0",
	}, nil
}

func (f *fakeOps) Ping(_ context.Context, node string) PingResult {
	switch strings.ToLower(node) {
	case "nodeb":
		return PingResult{From: "nodeb", Time: 321041 * time.Nanosecond}
	case "localhost", "nodea":
		return PingResult{From: "nodea", Time: 850}
	}
	return PingResult{Error: "no route to node"}
}

func (f *fakeOps) Traceroute(_ context.Context, node string) ([]TraceHop, error) {
	switch node {
	case "nodeb":
		return []TraceHop{{From: "nodea", Time: 204713}, {From: "nodeb", Time: 282759}}, nil
	case "far":
		hops := make([]TraceHop, 12)
		for i := range hops {
			hops[i] = TraceHop{From: fmt.Sprintf("n%d", i), Time: time.Duration(i) * time.Millisecond}
		}
		hops[11].Error = "timeout"
		return hops, nil
	}
	return nil, errors.New("traceroute failed")
}

func (f *fakeOps) Connect(_ context.Context, node, service, tlsClient string) (net.Conn, error) {
	if tlsClient != "" {
		return nil, fmt.Errorf("unknown TLS config %s", tlsClient)
	}
	if strings.EqualFold(node, "localhost") {
		node = "nodea"
	}
	f.mu.Lock()
	d := f.dial[node+"/"+service]
	f.mu.Unlock()
	if d == nil {
		return nil, errors.New("INTERNAL_ERROR (local): no route to node")
	}
	return d()
}

func (f *fakeOps) Reload(context.Context) error { return f.reloadErr }

// needsSignature mimics the signature rule for the fake's work types.
func needsSignature(workType string, sig Signature) error {
	secure := workType == "secure"
	if !secure && sig.JWT != "" {
		return errors.New("work type did not expect a signature")
	}
	if secure && !sig.Trusted && sig.JWT == "" {
		return errors.New("could not verify signature: signature is empty")
	}
	return nil
}

func (f *fakeOps) WorkSubmit(_ context.Context, req WorkSubmitRequest, created func(string) error, stdin io.Reader) (WorkSubmitResult, error) {
	f.mu.Lock()
	f.lastSubmit = req
	f.mu.Unlock()
	if err := needsSignature(req.WorkType, req.Signature); err != nil {
		return WorkSubmitResult{}, err
	}
	local := req.Node == "nodea" || strings.EqualFold(req.Node, "localhost")
	if local && req.TTL != "" {
		return WorkSubmitResult{}, errors.New("ttl option is intended for remote work only")
	}
	if req.WorkType != "cat" && req.WorkType != "secure" && req.WorkType != "failmid" {
		return WorkSubmitResult{}, fmt.Errorf("unknown work type %s", req.WorkType)
	}
	if req.Params["params"] != "" {
		return WorkSubmitResult{}, errors.New("extra params provided but not allowed")
	}
	f.mu.Lock()
	f.nextID++
	id := fmt.Sprintf("Unit%04d", f.nextID)
	u := &fakeUnit{workType: req.WorkType, detail: "Waiting for Input Data"}
	f.units[id] = u
	f.mu.Unlock()
	if err := created(id); err != nil {
		return WorkSubmitResult{}, err
	}
	if req.WorkType == "failmid" {
		// The agent goes away after 4 bytes of the payload.
		_, _ = io.ReadFull(stdin, make([]byte, 4))
		return WorkSubmitResult{}, errors.New("work agent unavailable: gone")
	}
	data, err := io.ReadAll(io.LimitReader(stdin, 1<<20))
	if err != nil {
		return WorkSubmitResult{}, err
	}
	f.mu.Lock()
	u.stdout, u.state, u.detail = data, 2, "exit status 0"
	f.mu.Unlock()
	return WorkSubmitResult{UnitID: id, Pending: !local}, nil
}

func (f *fakeOps) statusLocked(u *fakeUnit) WorkStatus {
	names := map[int]string{0: "Pending", 1: "Running", 2: "Succeeded", 3: "Failed", 4: "Canceled"}
	return WorkStatus{Detail: u.detail, State: u.state, StateName: names[u.state], StdoutSize: int64(len(u.stdout)), WorkType: u.workType}
}

func (f *fakeOps) WorkList(context.Context) (map[string]WorkStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]WorkStatus{}
	for id, u := range f.units {
		out[id] = f.statusLocked(u)
	}
	return out, nil
}

func (f *fakeOps) unit(id string) (*fakeUnit, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	u, ok := f.units[id]
	if !ok {
		return nil, fmt.Errorf("unknown work unit %s", id)
	}
	return u, nil
}

func (f *fakeOps) WorkStatus(_ context.Context, id string) (WorkStatus, error) {
	u, err := f.unit(id)
	if err != nil {
		return WorkStatus{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.statusLocked(u), nil
}

func (f *fakeOps) WorkResults(ctx context.Context, id string, offset int64, sig Signature) (io.ReadCloser, error) {
	u, err := f.unit(id)
	if err != nil {
		return nil, err
	}
	if err := needsSignature(u.workType, sig); err != nil {
		return nil, err
	}
	if u.endless {
		return &endlessReader{ctx: ctx, closed: f.noteClosed}, nil
	}
	f.mu.Lock()
	data := u.stdout
	f.mu.Unlock()
	if offset < 0 || offset > int64(len(data)) {
		offset = int64(len(data))
	}
	return &closeNotifier{Reader: strings.NewReader(string(data[offset:])), closed: f.noteClosed}, nil
}

func (f *fakeOps) noteClosed() {
	f.mu.Lock()
	f.streamsClosed++
	f.mu.Unlock()
}

func (f *fakeOps) closedStreams() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.streamsClosed
}

type closeNotifier struct {
	io.Reader
	closed func()
	once   sync.Once
}

func (c *closeNotifier) Close() error { c.once.Do(c.closed); return nil }

// endlessReader yields a chunk every couple of milliseconds until closed or
// its context ends, like a results stream of a unit that keeps running.
type endlessReader struct {
	ctx    context.Context
	closed func()
	once   sync.Once
}

func (e *endlessReader) Read(p []byte) (int, error) {
	t := time.NewTimer(2 * time.Millisecond)
	defer t.Stop()
	select {
	case <-e.ctx.Done():
		return 0, e.ctx.Err()
	case <-t.C:
	}
	return copy(p, "tick\n"), nil
}

func (e *endlessReader) Close() error { e.once.Do(e.closed); return nil }

func (f *fakeOps) WorkCancel(_ context.Context, id string, sig Signature) (bool, error) {
	u, err := f.unit(id)
	if err != nil {
		return false, err
	}
	if err := needsSignature(u.workType, sig); err != nil {
		return false, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if u.state < 2 {
		u.state, u.detail = 4, "Canceled"
	}
	return id == "PendUnit", nil
}

func (f *fakeOps) WorkRelease(_ context.Context, id string, force bool, sig Signature) (bool, error) {
	u, err := f.unit(id)
	if err != nil {
		return false, err
	}
	if err := needsSignature(u.workType, sig); err != nil {
		return false, err
	}
	if id == "PendUnit" && !force {
		return true, nil
	}
	f.mu.Lock()
	delete(f.units, id)
	f.mu.Unlock()
	return false, nil
}

func (f *fakeOps) addUnit(id string, u *fakeUnit) {
	f.mu.Lock()
	f.units[id] = u
	f.mu.Unlock()
}
