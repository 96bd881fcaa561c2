package routing

import (
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// sym builds a symmetric topology from edges "a-b:cost".
func sym(edges map[[2]string]float64) Topology {
	t := Topology{}
	for e, c := range edges {
		if t[e[0]] == nil {
			t[e[0]] = map[string]float64{}
		}
		if t[e[1]] == nil {
			t[e[1]] = map[string]float64{}
		}
		t[e[0]][e[1]] = c
		t[e[1]][e[0]] = c
	}
	return t
}

func TestCompute(t *testing.T) {
	tests := []struct {
		name     string
		topo     Topology
		wantNext Table
		wantCost map[string]float64
	}{
		{
			name:     "line",
			topo:     sym(map[[2]string]float64{{"a", "b"}: 1, {"b", "c"}: 2, {"c", "d"}: 1}),
			wantNext: Table{"b": "b", "c": "b", "d": "b"},
			wantCost: map[string]float64{"b": 1, "c": 3, "d": 4},
		},
		{
			name:     "cheaper detour",
			topo:     sym(map[[2]string]float64{{"a", "c"}: 10, {"a", "b"}: 1, {"b", "c"}: 1}),
			wantNext: Table{"b": "b", "c": "b"},
			wantCost: map[string]float64{"b": 1, "c": 2},
		},
		{
			name:     "equal cost square picks smaller first hop",
			topo:     sym(map[[2]string]float64{{"a", "x"}: 1, {"a", "b"}: 1, {"x", "d"}: 1, {"b", "d"}: 1}),
			wantNext: Table{"b": "b", "x": "x", "d": "b"},
			wantCost: map[string]float64{"b": 1, "x": 1, "d": 2},
		},
		{
			name:     "node only named in connections is not routable",
			topo:     Topology{"a": {"b": 1}, "b": {"a": 1, "ghost": 1}},
			wantNext: Table{"b": "b"},
			wantCost: map[string]float64{"b": 1},
		},
		{
			name:     "directed edges use the source's cost",
			topo:     Topology{"a": {"b": 5, "c": 1}, "b": {"a": 5}, "c": {"a": 1, "b": 1}},
			wantNext: Table{"b": "c", "c": "c"},
			wantCost: map[string]float64{"b": 2, "c": 1},
		},
		{
			name:     "non-positive costs ignored",
			topo:     Topology{"a": {"b": 0, "c": -1, "d": math.NaN()}, "b": {}, "c": {}, "d": {}},
			wantNext: Table{},
			wantCost: map[string]float64{},
		},
		{
			name:     "isolated",
			topo:     Topology{},
			wantNext: Table{},
			wantCost: map[string]float64{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			next, cost := Compute("a", tt.topo)
			if !reflect.DeepEqual(next, tt.wantNext) {
				t.Errorf("next = %v, want %v", next, tt.wantNext)
			}
			if !reflect.DeepEqual(cost, tt.wantCost) {
				t.Errorf("cost = %v, want %v", cost, tt.wantCost)
			}
		})
	}
}

// TestComputeMatchesBellmanFord checks costs against a brute-force
// reference on random graphs and that every first hop lies on a shortest
// path (so forwarding along tables is loop-free).
func TestComputeMatchesBellmanFord(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for trial := range 50 {
		n := 2 + r.IntN(30)
		topo := Topology{}
		for i := range n {
			topo[fmt.Sprint(i)] = map[string]float64{}
		}
		for range n * 2 {
			a, b := fmt.Sprint(r.IntN(n)), fmt.Sprint(r.IntN(n))
			if a != b {
				c := float64(1 + r.IntN(3))
				topo[a][b], topo[b][a] = c, c
			}
		}
		next, cost := Compute("0", topo)
		ref := bellmanFord("0", topo)
		delete(ref, "0")
		if !reflect.DeepEqual(cost, ref) {
			t.Fatalf("trial %d: cost %v, reference %v", trial, cost, ref)
		}
		for dst, hop := range next {
			if topo["0"][hop]+distFrom(hop, dst, topo) != cost[dst] {
				t.Fatalf("trial %d: hop %s to %s not on a shortest path", trial, hop, dst)
			}
			// Ties go to the smallest first hop of all shortest paths.
			for nb, c := range topo["0"] {
				if nb < hop && c+distFrom(nb, dst, topo) == cost[dst] {
					t.Fatalf("trial %d: hop %s to %s, but %s is smaller and as cheap", trial, hop, dst, nb)
				}
			}
		}
	}
}

func distFrom(src, dst string, topo Topology) float64 {
	if src == dst {
		return 0
	}
	return bellmanFord(src, topo)[dst]
}

func bellmanFord(src string, topo Topology) map[string]float64 {
	d := map[string]float64{src: 0}
	for range len(topo) {
		for u, nbs := range topo {
			du, ok := d[u]
			if !ok {
				continue
			}
			for v, c := range nbs {
				if _, known := topo[v]; !known {
					continue
				}
				if dv, ok := d[v]; !ok || du+c < dv {
					d[v] = du + c
				}
			}
		}
	}
	return d
}

func BenchmarkCompute100(b *testing.B)  { benchCompute(b, 100) }
func BenchmarkCompute1000(b *testing.B) { benchCompute(b, 1000) }

// benchCompute: a ring of n nodes with chords 7 apart (degree 4).
func benchCompute(b *testing.B, n int) {
	topo := Topology{}
	for i := range n {
		topo[fmt.Sprint(i)] = map[string]float64{}
	}
	for i := range n {
		for _, j := range []int{(i + 1) % n, (i + 7) % n} {
			a, c := fmt.Sprint(i), fmt.Sprint(j)
			topo[a][c], topo[c][a] = 1, 1
		}
	}
	for b.Loop() {
		Compute("0", topo)
	}
}
