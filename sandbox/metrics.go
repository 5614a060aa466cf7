package sandbox

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/huskrt/husk/internal/metrics"
	"github.com/huskrt/husk/shim/shimapi"
)

// noteLogs keeps the latest log counts a pod's shim reported. Counts only
// grow while a shim lives, so the larger is the later: replies that cross
// (a scrape's and a snapshot's) cannot move it back.
func (p *pod) noteLogs(c shimapi.LogCounts) {
	p.logsMu.Lock()
	defer p.logsMu.Unlock()
	p.logs.Lines = max(p.logs.Lines, c.Lines)
	p.logs.Bytes = max(p.logs.Bytes, c.Bytes)
}

func (p *pod) loggedCounts() shimapi.LogCounts {
	p.logsMu.Lock()
	defer p.logsMu.Unlock()
	return p.logs
}

// ShimMetrics reads what huskd's metrics report of the shims: how many
// run, their resident memory (from /proc), and what they wrote to
// container logs, asking each live shim for its counts (Info). It holds no
// pod's lock while a shim answers, so a slow shim delays the scrape, never
// a CRI call; each is given at most a second.
func (m *Manager) ShimMetrics(ctx context.Context) metrics.Shims {
	m.mu.RLock()
	pods := make([]*pod, 0, len(m.pods))
	for _, p := range m.pods {
		pods = append(pods, p)
	}
	out := metrics.Shims{LogLines: m.removedLogs.Lines, LogBytes: m.removedLogs.Bytes}
	m.mu.RUnlock()
	for _, p := range pods {
		p.mu.RLock()
		c, pid := p.shim, p.cur.Load().ShimPID
		p.mu.RUnlock()
		if c != nil {
			out.Running++
			if rss, err := rssBytes(pid); err == nil {
				out.RSSBytes += rss
			}
			ictx, cancel := context.WithTimeout(ctx, time.Second)
			if info, err := c.Info(ictx); err == nil {
				p.noteLogs(info.Snapshot.Logs)
			}
			cancel()
		}
		l := p.loggedCounts()
		out.LogLines += l.Lines
		out.LogBytes += l.Bytes
	}
	return out
}

// rssBytes is the resident memory of a process (VmRSS of
// /proc/<pid>/status).
func rssBytes(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range bytes.Lines(b) {
		if v, ok := bytes.CutPrefix(line, []byte("VmRSS:")); ok {
			kib, err := strconv.ParseUint(string(bytes.TrimSuffix(bytes.TrimSpace(v), []byte(" kB"))), 10, 64)
			return kib << 10, err
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}
