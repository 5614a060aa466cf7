package metrics

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
)

// /metrics serves every family, the shims' read at the scrape.
func TestServe(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	scrapes := 0
	stop := Serve(l, Registry(func(context.Context) Shims {
		scrapes++
		return Shims{Running: 2, RSSBytes: 3 << 20, LogLines: 7, LogBytes: 700}
	}))
	defer stop()
	OOMKills.Inc()
	CNIOperations.WithLabelValues(CNIAdd).Inc()
	resp, err := http.Get("http://" + l.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		"husk_shims 2\n", "husk_shim_memory_bytes 3.145728e+06\n",
		"husk_container_log_lines_total 7\n", "husk_container_log_bytes_total 700\n",
		"# TYPE husk_oom_kills_total counter\n", `husk_cni_operations_total{operation="add"} `,
		"# TYPE husk_image_pulls_in_progress gauge\n", "go_goroutines ", "process_resident_memory_bytes ",
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if scrapes != 1 {
		t.Errorf("the shims were read %d times in one scrape", scrapes)
	}
}
