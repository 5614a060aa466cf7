// Package benchtable is the comparison table of the benchmarks that measure
// husk beside containerd (conformance/bench's BenchmarkCompare,
// conformance/kubelet's BenchmarkNode): one row per figure, a column per
// runtime, the ratio husk/peer and whether issue 19's target is met, printed
// and saved as JSON under bench-results/.
package benchtable

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	goruntime "runtime"
	"sort"
	"strings"
	"time"
)

// Goal is what a row must reach (issue 19): husk's median at most Ratio
// times the reference peer's and, when Limit is set, under Limit in the
// row's unit. The zero Goal is none.
type Goal struct{ Ratio, Limit float64 }

// Column is one peer's figures in a row.
type Column struct {
	Median float64 `json:"median"`
	P90    float64 `json:"p90"`
}

// Row is one line of the comparison: a median and p90 per runtime (one
// value for a single reading), and the ratios husk/peer of the medians.
type Row struct {
	What       string             `json:"what"`
	Unit       string             `json:"unit"`
	Samples    int                `json:"samples"`
	HuskMedian float64            `json:"husk_median"`
	HuskP90    float64            `json:"husk_p90"`
	Peers      map[string]Column  `json:"peers,omitempty"`  // by peer name
	Ratios     map[string]float64 `json:"ratios,omitempty"` // husk/peer, by peer
	Against    string             `json:"ratio_against,omitempty"`
	Ratio      float64            `json:"ratio"` // husk/Against
	Target     float64            `json:"target,omitempty"`
	Limit      float64            `json:"limit,omitempty"` // in Unit
	Met        *bool              `json:"met,omitempty"`
}

// Table is the comparison; Peers are the runtimes husk is compared with,
// in column order, the first the one ratios and targets are against.
// OneValue prints one figure per runtime (each row a single reading)
// instead of a median and a p90.
type Table struct {
	Peers    []string
	Rows     []Row
	OneValue bool
}

// Quantile is the q-quantile of v (nearest rank), 0 for none.
func Quantile(v []float64, q float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[int(q*float64(len(s)-1)+0.5)]
}

// Add records one workload's samples, by runtime name ("husk" and the
// peers').
func (t *Table) Add(what, unit string, g Goal, samples map[string][]float64) {
	husk := samples["husk"]
	r := Row{What: what, Unit: unit, Samples: len(husk), Target: g.Ratio, Limit: g.Limit,
		HuskMedian: Quantile(husk, 0.5), HuskP90: Quantile(husk, 0.9),
		Peers: map[string]Column{}, Ratios: map[string]float64{}}
	for _, p := range t.Peers {
		c := Column{Median: Quantile(samples[p], 0.5), P90: Quantile(samples[p], 0.9)}
		r.Peers[p] = c
		if c.Median > 0 {
			r.Ratios[p] = r.HuskMedian / c.Median
		}
	}
	if len(t.Peers) > 0 {
		r.Against, r.Ratio = t.Peers[0], r.Ratios[t.Peers[0]]
	}
	if met, _, ok := Verdict(r); ok {
		r.Met = &met
	}
	t.Rows = append(t.Rows, r)
}

// Verdict tells whether r meets its goal, in words with the margin
// (target/ratio: above 1 is headroom, below 1 the factor still missing);
// ok is false for a row without a goal or without a peer to judge by.
func Verdict(r Row) (met bool, text string, ok bool) {
	if r.Target == 0 && r.Limit == 0 {
		return false, "", false
	}
	var parts []string
	met = true
	if r.Target > 0 {
		if r.Ratio <= 0 {
			return false, "no peer", false
		}
		met = r.Ratio <= r.Target
		parts = append(parts, fmt.Sprintf("x%.2f", r.Target/r.Ratio))
	}
	if r.Limit > 0 {
		if r.HuskMedian < r.Limit {
			parts = append(parts, fmt.Sprintf("%.3g<%g %s", r.HuskMedian, r.Limit, r.Unit))
		} else {
			met = false
			parts = append(parts, fmt.Sprintf("%.3g>=%g %s", r.HuskMedian, r.Limit, r.Unit))
		}
	}
	word := "met"
	if !met {
		word = "NOT met"
	}
	return met, word + " (" + strings.Join(parts, "; ") + ")", true
}

func (t *Table) String() string {
	var b strings.Builder
	if t.OneValue {
		fmt.Fprintf(&b, "%-44s %9s", "figure", "husk")
		for _, p := range t.Peers {
			fmt.Fprintf(&b, " %15s", p)
		}
	} else {
		fmt.Fprintf(&b, "%-44s %5s %9s %9s", "workload", "n", "husk", "husk p90")
		for _, p := range t.Peers {
			fmt.Fprintf(&b, " %15s %9s", p, "p90")
		}
	}
	fmt.Fprintf(&b, " %6s %6s  %s\n", "ratio", "target", "goal")
	for _, r := range t.Rows {
		if t.OneValue {
			fmt.Fprintf(&b, "%-44s %9.2f", r.What+" ("+r.Unit+")", r.HuskMedian)
			for _, p := range t.Peers {
				fmt.Fprintf(&b, " %15.2f", r.Peers[p].Median)
			}
		} else {
			fmt.Fprintf(&b, "%-44s %5d %9.2f %9.2f", r.What+" ("+r.Unit+")", r.Samples, r.HuskMedian, r.HuskP90)
			for _, p := range t.Peers {
				fmt.Fprintf(&b, " %15.2f %9.2f", r.Peers[p].Median, r.Peers[p].P90)
			}
		}
		target := ""
		if r.Target > 0 {
			target = fmt.Sprintf("%.2f", r.Target)
		}
		_, text, _ := Verdict(r)
		fmt.Fprintf(&b, " %6.3f %6s  %s\n", r.Ratio, target, text)
	}
	return b.String()
}

// Write saves the table as JSON, with extra's keys beside the rows, to
// $HUSK_BENCH_JSON or else to bench-results/<prefix><UTC time>.json at the
// root of the clone (the first parent of the working directory that holds
// go.mod), so that runs can be compared over time; it returns the path.
func (t *Table) Write(prefix string, extra map[string]any) (string, error) {
	path := os.Getenv("HUSK_BENCH_JSON")
	if path == "" {
		root, err := cloneRoot()
		if err != nil {
			return "", err
		}
		dir := filepath.Join(root, "bench-results")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return "", err
		}
		path = filepath.Join(dir, prefix+time.Now().UTC().Format("20060102T150405Z")+".json")
	}
	host, _ := os.Hostname()
	doc := map[string]any{"time": time.Now().UTC(), "host": host, "cpus": goruntime.NumCPU(), "kernel": kernel(), "rows": t.Rows}
	for k, v := range extra {
		doc[k] = v
	}
	body, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return "", err
	}
	return path, os.WriteFile(path, body, 0o644)
}

func cloneRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the working directory")
		}
		dir = parent
	}
}

func kernel() string {
	b, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return strings.TrimSpace(string(b))
}
