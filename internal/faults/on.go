//go:build husk_faults

package faults

import (
	"os"
	"sync"
	"syscall"

	"k8s.io/klog/v2"
)

// Enabled says whether this binary was built with fault points.
const Enabled = true

var (
	mu    sync.Mutex
	armed map[string]int // point → the hit that kills (1: the first)
	hits  = map[string]int{}
)

func init() { armed = parse(os.Getenv(EnvVar)) }

// Point kills huskd with SIGKILL when name is armed and this is the hit
// that was asked for: nothing after it runs, no deferred function, no
// rollback, as in a real crash.
func Point(name string) {
	if len(armed) == 0 {
		return
	}
	mu.Lock()
	defer mu.Unlock()
	want, ok := armed[name]
	if !ok {
		return
	}
	hits[name]++
	if hits[name] != want {
		return
	}
	klog.InfoS("Fault point reached; killing huskd", "point", name)
	klog.Flush()
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {} // the signal is on its way
}
