package integration

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/receptor-mesh/receptor/services/control/client"
	"github.com/receptor-mesh/receptor/services/testkit"
)

// metricValue finds the sample of name whose labels include every
// `key="value"` in labels, in a text exposition; false when absent.
func metricValue(body, name string, labels ...string) (float64, bool) {
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `(\{[^}]*\})? (\S+)$`)
	for _, m := range re.FindAllStringSubmatch(body, -1) {
		ok := true
		for _, l := range labels {
			if !strings.Contains(m[1], l) {
				ok = false
				break
			}
		}
		if ok {
			v, err := strconv.ParseFloat(m[2], 64)
			return v, err == nil
		}
	}
	return 0, false
}

func scrape(t *testing.T, url, token string) string {
	t.Helper()
	code, body := restCall(t, "GET", url, map[string]string{"Authorization": "Bearer " + token}, "")
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, code, truncate(body))
	}
	return body
}

// TestMetricsThreeNodes scrapes /metrics of real binaries in a 3-node mesh
// (a - b - c) and checks that the figures follow the traffic: bytes after
// a 1 MiB submission through the mesh, units by state, a firewall drop
// after a blocked ping, and a link going down when its peer is killed. The
// exposition passes the client library's linter, and the metrics face
// refuses callers without the reader role.
func TestMetricsThreeNodes(t *testing.T) {
	a, b, c := NewNode(t, "obsa"), NewNode(t, "obsb"), NewNode(t, "obsc")
	tokDir := shortTempDir(t)
	readerTok := "reader-token-0123456789"
	readerPath := writeToken(t, tokDir, "prom", readerTok)
	// a verifies signed work (type "secure") with pub; key signs the
	// tokens the test sends; its tls-server certificate is reported.
	key, pub := verificationKey(t)
	nc := newCA(t).issue(t, "obsa")
	a.Start(Spec{Bin: workAllInOneBin, Config: func(n *Node) string {
		return "---\n" + entity("node", "id", n.ID, "datadir", n.Dir+"/data") +
			"    firewallrules:\n      - action: reject\n        tonode: obsc\n        toservice: ping\n" +
			entity("log-level", "level", "debug") +
			entity("control-service", "service", "control", "filename", n.Socket) +
			entity("tcp-listener", "port", strconv.Itoa(n.Port("mesh"))) +
			entity("http-gateway", "tcplisten", n.Addr("http")) +
			entity("access", "role", "reader", "tokenfile", readerPath) +
			entity("tls-server", "name", "obs-tls", "cert", nc.Cert, "key", nc.Key) +
			entity("work-verification", "publickey", pub) +
			entity("work-command", "worktype", "secure", "command", "cat", "verifysignature", "true") +
			workCommandEntity("false", "false", "", false) +
			workCommandEntity("cat", "cat", "", false)
	}})
	b.Start(Spec{Config: func(n *Node) string {
		return nodeYAML(n, nil, entity("tcp-listener", "port", strconv.Itoa(n.Port("mesh"))),
			entity("tcp-peer", "address", a.Addr("mesh")))
	}})
	c.Start(Spec{Bin: workAllInOneBin, Config: func(n *Node) string {
		return nodeYAML(n, nil, entity("tcp-peer", "address", b.Addr("mesh")),
			entity("metrics", "tcplisten", n.Addr("metrics")),
			entity("access", "role", "reader", "tokenfile", readerPath),
			workCommandEntity("cat", "cat", "", false))
	}})
	a.WaitRoutes(map[string]string{"obsb": "obsb", "obsc": "obsb"})
	c.WaitRoutes(map[string]string{"obsb": "obsb", "obsa": "obsb"})
	admin := gatewayToken(t, a)
	base := "http://" + a.Addr("http")

	// Deny by default: anonymous callers are refused on both faces.
	if code, _ := restCall(t, "GET", base+"/metrics", nil, ""); code != http.StatusUnauthorized {
		t.Errorf("anonymous GET /metrics: %d, want 401", code)
	}
	if code, _ := restCall(t, "GET", "http://"+c.Addr("metrics")+"/metrics", nil, ""); code != http.StatusUnauthorized {
		t.Errorf("anonymous GET on the metrics listener: %d, want 401", code)
	}

	// 1 MiB through a -> b -> c: a remote unit on c fed by a.
	stdin := strings.Repeat("0123456789abcdef", 1<<16)
	body := fmt.Sprintf(`{"params":{"workType":"cat","node":"obsc"},"stdin":%q}`, base64.StdEncoding.EncodeToString([]byte(stdin)))
	code, resp := restCall(t, "POST", base+"/v1/work", map[string]string{"Authorization": "Bearer " + admin, "Content-Type": "application/json"}, body)
	if code != http.StatusOK {
		t.Fatalf("submit: %d %s", code, truncate(resp))
	}
	testkit.Eventually(t, 60*time.Second, "metrics follow the traffic", func() error {
		m := scrape(t, base+"/metrics", admin)
		if v, ok := metricValue(m, "receptor_mesh_link_sent_bytes_total", `peer="obsb"`); !ok || v < 1<<20 {
			return fmt.Errorf("bytes sent to obsb: %v (present %v), want >= 1 MiB", v, ok)
		}
		if v, ok := metricValue(m, "receptor_mesh_link_up", `peer="obsb"`, `direction="inbound"`); !ok || v != 1 {
			return fmt.Errorf("link up to obsb: %v %v", v, ok)
		}
		if v, ok := metricValue(m, "receptor_work_units", `state="Succeeded"`, `work_type="remote"`); !ok || v < 1 {
			return fmt.Errorf("remote units Succeeded: %v %v", v, ok)
		}
		if _, ok := metricValue(m, "grpc_server_handled_total", `grpc_method="CreateWork"`); !ok {
			return fmt.Errorf("no gRPC server metrics for CreateWork")
		}
		if _, ok := metricValue(m, "receptor_mesh_link_rtt_seconds", `peer="obsb"`); !ok {
			return fmt.Errorf("no RTT for obsb yet")
		}
		return nil
	})
	m := scrape(t, base+"/metrics", readerTok)
	problems, err := promlint.New(strings.NewReader(m)).Lint()
	if err != nil {
		t.Fatalf("lint: %v", err)
	}
	for _, p := range problems {
		t.Errorf("metrics lint: %s: %s", p.Metric, p.Text)
	}
	n := 0
	for _, line := range strings.Split(m, "\n") {
		if strings.HasPrefix(line, "# TYPE ") {
			n++
		}
	}
	t.Logf("a's /metrics: %d metric families", n)

	// The worker half of c is scraped through c's metrics listener.
	cm := scrape(t, "http://"+c.Addr("metrics")+"/metrics", readerTok)
	if v, ok := metricValue(cm, "receptor_work_units", `state="Succeeded"`, `work_type="cat"`); !ok || v < 1 {
		t.Errorf("c's cat units Succeeded: %v %v", v, ok)
	}

	// A blocked ping counts a firewall drop.
	before, _ := metricValue(m, "receptor_mesh_datagrams_dropped_total", `reason="firewall_reject"`)
	code, resp = restCall(t, "POST", base+"/v1/nodes/obsc:ping", map[string]string{"Authorization": "Bearer " + admin, "Content-Type": "application/json"}, "{}")
	if code == http.StatusOK {
		t.Fatalf("ping through the firewall succeeded: %s", resp)
	}
	if after, _ := metricValue(scrape(t, base+"/metrics", admin), "receptor_mesh_datagrams_dropped_total", `reason="firewall_reject"`); after <= before {
		t.Errorf("firewall_reject drops %v -> %v after a blocked ping", before, after)
	}

	// Work, control and certificate figures move: a failing unit counts as
	// Failed; an expired token sent from b over the mesh to a's control
	// service counts a signature failure with its clock skew; a control
	// session on a's unix socket counts on the unix face; c streamed the
	// 1 MiB of results to a.
	code, resp = restCall(t, "POST", base+"/v1/work", map[string]string{"Authorization": "Bearer " + admin, "Content-Type": "application/json"},
		`{"params":{"workType":"false","node":"obsa"},"stdin":""}`)
	if code != http.StatusOK {
		t.Fatalf("submit false: %d %s", code, truncate(resp))
	}
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	local, err := a.Dial(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := local.Command(ctx, "status"); err != nil {
		t.Fatalf("status over the unix socket: %v", err)
	}
	_ = local.Close()
	viaB, err := b.Dial(ctx)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := viaB.Connect(ctx, "obsa", "control", "")
	if err != nil {
		t.Fatal(err)
	}
	remote, err := client.NewConn(ctx, raw)
	if err != nil {
		t.Fatal(err)
	}
	expired := signToken(t, key, "obsa", time.Now().Add(-10*time.Minute))
	if _, err := remote.SubmitWork(ctx, map[string]string{"node": "obsa", "worktype": "secure", "signature": expired}, strings.NewReader("x")); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Errorf("submit with an expired token: %v, want refused as expired", err)
	}
	_ = remote.Close()
	_ = viaB.Close()
	testkit.Eventually(t, 30*time.Second, "work, control and certificate figures", func() error {
		m := scrape(t, base+"/metrics", admin)
		cm := scrape(t, "http://"+c.Addr("metrics")+"/metrics", readerTok)
		for _, w := range []struct {
			body, name string
			labels     []string
			min        float64
		}{
			{m, "receptor_work_units_completed_total", []string{`work_type="false"`, `outcome="Failed"`}, 1},
			{m, "receptor_work_units_completed_total", []string{`work_type="remote"`, `outcome="Succeeded"`}, 1},
			{m, "receptor_work_remote_status_polls_total", []string{`outcome="ok"`}, 1},
			{m, "receptor_work_signature_failures_total", []string{`reason="expired"`}, 1},
			{m, "receptor_work_signature_clock_skew_seconds_count", []string{`reason="expired"`}, 1},
			// the token expired 10 min ago: over 300 s late
			{m, "receptor_work_signature_clock_skew_seconds_sum", []string{`reason="expired"`}, 300},
			{m, "receptor_control_sessions_total", []string{`face="unix"`}, 1},
			{m, "receptor_control_sessions_total", []string{`face="mesh"`}, 1},
			{m, "receptor_control_requests_total", []string{`command="status"`, `outcome="ok"`}, 1},
			{m, "receptor_control_requests_total", []string{`command="work submit"`, `outcome="error"`}, 1},
			{m, "receptor_tls_certificate_expiry_seconds", []string{`entity="tls-server"`, `name="obs-tls"`}, 3600},
			{cm, "receptor_work_results_sent_bytes_total", []string{`work_type="cat"`}, 1 << 20},
			{cm, "receptor_work_units_completed_total", []string{`work_type="cat"`, `outcome="Succeeded"`}, 1},
		} {
			if v, ok := metricValue(w.body, w.name, w.labels...); !ok || v < w.min {
				return fmt.Errorf("%s%v = %v (present %v), want >= %v", w.name, w.labels, v, ok, w.min)
			}
		}
		for _, name := range []string{"receptor_work_unit_start_duration_seconds_count", "receptor_work_unit_run_duration_seconds_count", "receptor_work_remote_reconnects_total"} {
			if _, ok := metricValue(m, name); !ok {
				return fmt.Errorf("%s absent", name)
			}
		}
		return nil
	})
	m = scrape(t, base+"/metrics", readerTok)
	problems, err = promlint.New(strings.NewReader(m)).Lint()
	if err != nil {
		t.Fatalf("lint: %v", err)
	}
	for _, p := range problems {
		t.Errorf("metrics lint after the work and control traffic: %s: %s", p.Metric, p.Text)
	}

	// Killing b takes a's link to it down (the series stays, at 0).
	b.Kill()
	testkit.Eventually(t, 40*time.Second, "link down", func() error {
		v, ok := metricValue(scrape(t, base+"/metrics", admin), "receptor_mesh_link_up", `peer="obsb"`)
		if !ok || v != 0 {
			return fmt.Errorf("link up to obsb: %v (present %v), want 0", v, ok)
		}
		return nil
	})
}

// verificationKey returns an RSA key and the path of its public key as
// PEM, for a work-verification entity.
func verificationKey(t *testing.T) (*rsa.PrivateKey, string) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "verify.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return key, path
}

// signToken signs a work token for node audience expiring at exp.
func signToken(t *testing.T, key *rsa.PrivateKey, audience string, exp time.Time) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodRS512, jwt.RegisteredClaims{
		Audience: jwt.ClaimStrings{audience}, ExpiresAt: jwt.NewNumericDate(exp),
	}).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestWatchMeshREST follows a 4-node mesh through GET /v1/mesh/watch: a
// node joining, a link dropping and the route change it causes arrive in
// order, in the line form and as Server-Sent Events; and a unit's whole
// life arrives through GET /v1/work/watch.
func TestWatchMeshREST(t *testing.T) {
	a, b, c, d := NewNode(t, "wa"), NewNode(t, "wb"), NewNode(t, "wc"), NewNode(t, "wd")
	a.Start(Spec{Bin: workAllInOneBin, Config: func(n *Node) string {
		return nodeYAML(n, nil, entity("tcp-listener", "port", strconv.Itoa(n.Port("mesh"))),
			entity("http-gateway", "tcplisten", n.Addr("http")),
			workCommandEntity("cat", "cat", "", false))
	}})
	// b and c both reach a; d reaches b (cost 1) and c (cost 5): d's route is via b.
	for _, n := range []*Node{b, c} {
		n.Start(Spec{Config: func(n *Node) string {
			return nodeYAML(n, nil, entity("tcp-listener", "port", strconv.Itoa(n.Port("mesh"))),
				entity("tcp-peer", "address", a.Addr("mesh")))
		}})
	}
	a.WaitRoutes(map[string]string{"wb": "wb", "wc": "wc"})
	admin := gatewayToken(t, a)
	base := "http://" + a.Addr("http")

	for _, form := range []string{"lines", "sse"} {
		t.Run(form, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, "GET", base+"/v1/mesh/watch", nil)
			req.Header.Set("Authorization", "Bearer "+admin)
			if form == "sse" {
				req.Header.Set("Accept", "text/event-stream")
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("watch: %d", resp.StatusCode)
			}
			if ct := resp.Header.Get("Content-Type"); (form == "sse") != strings.HasPrefix(ct, "text/event-stream") {
				t.Fatalf("Content-Type %q for %s", ct, form)
			}
			events := make(chan map[string]any, 4096)
			go func() {
				defer close(events)
				sc := bufio.NewScanner(resp.Body)
				sc.Buffer(make([]byte, 1<<20), 1<<20)
				for sc.Scan() {
					line := sc.Text()
					if form == "sse" {
						if !strings.HasPrefix(line, "data: ") {
							continue
						}
						line = strings.TrimPrefix(line, "data: ")
					}
					var m struct {
						Result map[string]any `json:"result"`
					}
					if json.Unmarshal([]byte(line), &m) == nil && m.Result != nil {
						events <- m.Result
					}
				}
			}()
			first := <-events
			if first["snapshot"] == nil {
				t.Fatalf("first message is not a snapshot: %v", first)
			}
			if form == "sse" {
				return // the form is what this subtest checks; the order is checked below
			}
			// d joins through b (cost 1) and c (cost 5); then b stops: a's
			// link to b drops and a's route to d moves to c.
			d.Start(Spec{Config: func(n *Node) string {
				return nodeYAML(n, nil, entity("tcp-peer", "address", b.Addr("mesh"), "cost", "1"),
					entity("tcp-peer", "address", c.Addr("mesh"), "cost", "5"))
			}})
			waitEvent(t, events, "node wd appeared", func(e map[string]any) bool {
				return e["event"] != nil && ev(e, "kind") == "MESH_EVENT_KIND_NODE_APPEARED" && ev(e, "nodeId") == "wd"
			})
			b.Stop()
			waitEvent(t, events, "link to wb down", func(e map[string]any) bool {
				return ev(e, "kind") == "MESH_EVENT_KIND_LINK_DOWN" && ev(e, "peer") == "wb"
			})
			waitEvent(t, events, "route to wd via wc", func(e map[string]any) bool {
				return ev(e, "kind") == "MESH_EVENT_KIND_ROUTE_CHANGED" && ev(e, "nodeId") == "wd" && ev(e, "nextHop") == "wc"
			})
		})
	}

	// A unit's life through the work watch.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/v1/work/watch", nil)
	req.Header.Set("Authorization", "Bearer "+admin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	lines := bufio.NewScanner(resp.Body)
	next := func() map[string]any {
		if !lines.Scan() {
			t.Fatalf("work watch ended: %v", lines.Err())
		}
		var m struct {
			Result map[string]any `json:"result"`
		}
		if err := json.Unmarshal(lines.Bytes(), &m); err != nil || m.Result == nil {
			t.Fatalf("work watch line %q: %v", lines.Text(), err)
		}
		return m.Result
	}
	if k := next()["kind"]; k != "UNIT_EVENT_KIND_SNAPSHOT_END" {
		t.Fatalf("first work event %v, want the end of an empty snapshot", k)
	}
	code, out := restCall(t, "POST", base+"/v1/work", map[string]string{"Authorization": "Bearer " + admin, "Content-Type": "application/json"},
		`{"params":{"workType":"cat","node":"wa"},"stdin":"aGkK"}`)
	if code != 200 {
		t.Fatalf("submit: %d %s", code, out)
	}
	var kinds []string
	var states []string
	for {
		e := next()
		kinds = append(kinds, fmt.Sprint(e["kind"]))
		if st, ok := e["status"].(map[string]any); ok && st != nil {
			states = append(states, fmt.Sprint(st["stateName"]))
			if st["stateName"] == "Succeeded" {
				break
			}
		}
	}
	if kinds[0] != "UNIT_EVENT_KIND_CREATED" {
		t.Errorf("first unit event %v, want CREATED (all: %v)", kinds[0], kinds)
	}
	t.Logf("unit states seen: %v", states)
	var unitID string
	if m := regexp.MustCompile(`"unitId":\s*"(\w+)"`).FindStringSubmatch(out); m != nil {
		unitID = m[1]
	}
	if code, out := restCall(t, "DELETE", base+"/v1/work/"+unitID, map[string]string{"Authorization": "Bearer " + admin}, ""); code != 200 {
		t.Fatalf("release: %d %s", code, out)
	}
	for {
		e := next()
		if e["kind"] == "UNIT_EVENT_KIND_RELEASED" {
			if e["unitId"] != unitID {
				t.Errorf("released %v, want %s", e["unitId"], unitID)
			}
			break
		}
	}
}

func ev(m map[string]any, key string) string {
	e, _ := m["event"].(map[string]any)
	if e == nil {
		return ""
	}
	return fmt.Sprint(e[key])
}

func waitEvent(t *testing.T, events <-chan map[string]any, what string, match func(map[string]any) bool) {
	t.Helper()
	timeout := time.After(60 * time.Second)
	for {
		select {
		case e, ok := <-events:
			if !ok {
				t.Fatalf("watch ended waiting for %s", what)
			}
			if match(e) {
				return
			}
		case <-timeout:
			t.Fatalf("no event: %s", what)
		}
	}
}
