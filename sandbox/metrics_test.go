package sandbox

import (
	"os"
	"testing"

	"github.com/huskrt/husk/shim/shimapi"
)

func TestRSSBytes(t *testing.T) {
	rss, err := rssBytes(os.Getpid())
	if err != nil || rss < 1<<20 || rss%1024 != 0 {
		t.Errorf("this test's RSS: %d, %v", rss, err)
	}
	if _, err := rssBytes(-1); err == nil {
		t.Error("no error for a process that is not there")
	}
}

// A pod keeps the largest counts it heard: replies that cross (a scrape's
// Info and the monitor's snapshot) cannot move its counter back.
func TestNoteLogsNeverGoesBack(t *testing.T) {
	var p pod
	for _, c := range []shimapi.LogCounts{{Lines: 3, Bytes: 90}, {Lines: 2, Bytes: 60}, {Lines: 5, Bytes: 150}, {}} {
		p.noteLogs(c)
	}
	if got := p.loggedCounts(); got != (shimapi.LogCounts{Lines: 5, Bytes: 150}) {
		t.Errorf("counts %+v", got)
	}
}
