package benchtable

import "testing"

func TestVerdict(t *testing.T) {
	for _, c := range []struct {
		name     string
		r        Row
		met, ok  bool
		wantText string
	}{
		{name: "no goal", r: Row{Ratio: 0.5, HuskMedian: 3, Unit: "ms"}},
		{name: "ratio met", r: Row{Ratio: 0.25, Target: 0.30, Unit: "ms"}, met: true, ok: true, wantText: "met (x1.20)"},
		{name: "ratio met exactly", r: Row{Ratio: 0.30, Target: 0.30, Unit: "ms"}, met: true, ok: true, wantText: "met (x1.00)"},
		{name: "ratio not met", r: Row{Ratio: 0.60, Target: 0.30, Unit: "ms"}, ok: true, wantText: "NOT met (x0.50)"},
		{name: "no peer", r: Row{Target: 0.30, Unit: "ms"}, wantText: "no peer"},
		{name: "both met", r: Row{Ratio: 0.04, Target: 0.05, Limit: 10, HuskMedian: 2.5, Unit: "ms"}, met: true, ok: true, wantText: "met (x1.25; 2.5<10 ms)"},
		{name: "ratio met, over the limit", r: Row{Ratio: 0.04, Target: 0.05, Limit: 10, HuskMedian: 12, Unit: "ms"}, ok: true, wantText: "NOT met (x1.25; 12>=10 ms)"},
		{name: "under the limit, ratio not met", r: Row{Ratio: 0.5, Target: 0.30, Limit: 0.8, HuskMedian: 0.61, Unit: "MiB"}, ok: true, wantText: "NOT met (x0.60; 0.61<0.8 MiB)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			met, text, ok := Verdict(c.r)
			if met != c.met || ok != c.ok || text != c.wantText {
				t.Errorf("Verdict = %v, %q, %v; want %v, %q, %v", met, text, ok, c.met, c.wantText, c.ok)
			}
		})
	}
}

// The ratio and the goal are against the first peer; every peer keeps its
// column and its own ratio.
func TestTableAdd(t *testing.T) {
	tab := Table{Peers: []string{"containerd-2.4", "containerd-1.6"}}
	tab.Add("startup", "ms", Goal{Ratio: 0.30}, map[string][]float64{
		"husk":           {30, 20, 10},
		"containerd-2.4": {100, 300, 200},
		"containerd-1.6": {50, 50, 50},
	})
	r := tab.Rows[0]
	if r.Against != "containerd-2.4" || r.Ratio != 0.1 || r.Met == nil || !*r.Met {
		t.Errorf("against %q ratio %v met %v; want containerd-2.4, 0.1, met", r.Against, r.Ratio, r.Met)
	}
	if r.Ratios["containerd-1.6"] != 0.4 || r.Peers["containerd-2.4"].Median != 200 || r.Peers["containerd-2.4"].P90 != 300 {
		t.Errorf("peers %v ratios %v", r.Peers, r.Ratios)
	}
	tab.Add("no goal", "ms", Goal{}, map[string][]float64{"husk": {1}, "containerd-2.4": {2}})
	if tab.Rows[1].Met != nil {
		t.Errorf("a row without a goal has met = %v", *tab.Rows[1].Met)
	}
}
