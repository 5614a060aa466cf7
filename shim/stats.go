package shim

import (
	"os"
	"runtime"
	"runtime/debug"

	"github.com/huskrt/husk/shim/shimapi"
)

// Stats reports what the shim holds. It collects garbage first, so that
// the heap figure is what is live; shims are small, so this costs well
// under a millisecond.
func (v *service) Stats(_ shimapi.Empty, r *shimapi.StatsReply) error {
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return err
	}
	*r = shimapi.StatsReply{
		Goroutines: runtime.NumGoroutine(),
		// ReadDir's own descriptor is among those it lists.
		FDs:       len(fds) - 1,
		HeapAlloc: ms.HeapAlloc,
		HeapInuse: ms.HeapInuse,
		Sys:       ms.Sys,
		Sessions:  int(v.s.sessions.Load()),
	}
	return nil
}
