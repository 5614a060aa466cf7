package integration

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/huskrt/husk/conformance/huskdtest"
	"github.com/huskrt/husk/shim/shimapi"
)

// A refusal only the shim can make reaches kubelet with its code, not
// Unknown (issue 14): the container exited, the shim knows, huskd has not
// heard yet, and kubelet asks to reopen its log (log rotation) or update
// its resources. The window is real but short; a relay between huskd and
// the pod's shim holds the shim's state reports (its Shim.Wait replies)
// back, as a busy huskd would be late to read them, so that it is certain.
func TestShimRefusalsKeepTheirCode(t *testing.T) {
	h, _ := ctrHuskd(t, "")
	ctx := context.Background()
	pod, podCfg := podWithLogs(t, h, "shimerr", nil)
	id := runCtr(t, h, pod, podCfg, ctrConfig("sleeper", "sleep", "3600"))

	// huskd dials the shim's socket when it starts: restart it onto the
	// relay.
	h.Kill()
	dir := filepath.Join(h.State, "pods", pod)
	real := filepath.Join(dir, "r.sock") // a socket's path has at most 107 bytes
	if err := os.Rename(filepath.Join(dir, shimapi.SocketName), real); err != nil {
		t.Fatal(err)
	}
	r := newWaitRelay(t, filepath.Join(dir, shimapi.SocketName), real)
	defer r.close()
	h.Launch()
	if st := ctrStatus(t, h, id); st.State != runtime.ContainerState_CONTAINER_RUNNING {
		t.Fatalf("after the restart the container is %s: %s", st.State, st.Message)
	}

	r.hold()
	pid := ctrPid(t, h, id)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	huskdtest.Eventually(t, 10*time.Second, "the shim to record the exit", func() bool {
		b, _ := os.ReadFile(filepath.Join(dir, shimapi.ContainersFile))
		var snap shimapi.Snapshot
		_ = json.Unmarshal(b, &snap)
		for _, c := range snap.Containers {
			if c.ID == id {
				return c.Status == shimapi.StatusExited
			}
		}
		return false
	})
	if st := ctrStatus(t, h, id); st.State != runtime.ContainerState_CONTAINER_RUNNING {
		t.Fatalf("huskd heard of the exit through the relay (%s): the test shows nothing", st.State)
	}

	err := h.Runtime.ReopenContainerLog(ctx, id)
	if status.Code(err) != codes.FailedPrecondition {
		t.Errorf("ReopenContainerLog of a container the shim saw exit: %v (%s), want FailedPrecondition", err, status.Code(err))
	}
	err = h.Runtime.UpdateContainerResources(ctx, id, &runtime.ContainerResources{Linux: &runtime.LinuxContainerResources{CpuShares: 512}})
	if status.Code(err) != codes.FailedPrecondition {
		t.Errorf("UpdateContainerResources of a container the shim saw exit: %v (%s), want FailedPrecondition", err, status.Code(err))
	}

	r.release()
	waitExited(t, h, id, 10*time.Second)
	// Remove the pod while the relay still carries huskd's connection to
	// its shim: closing the relay first would look like the shim's death.
	if err := h.Runtime.StopPodSandbox(ctx, pod); err != nil {
		t.Fatal(err)
	}
	if err := h.Runtime.RemovePodSandbox(ctx, pod); err != nil {
		t.Fatal(err)
	}
}

// waitRelay carries huskd's connections to a shim's socket, holding the
// shim's replies to Shim.Wait while hold is on. jsonrpc writes one JSON
// object per line, and a Wait reply's result is a Snapshot, whose first
// field is seq.
type waitRelay struct {
	l     net.Listener
	mu    sync.Mutex
	on    bool
	held  []func()
	conns []net.Conn
}

func newWaitRelay(t *testing.T, at, to string) *waitRelay {
	t.Helper()
	l, err := net.Listen("unix", at)
	if err != nil {
		t.Fatal(err)
	}
	r := &waitRelay{l: l}
	go func() {
		for {
			in, err := l.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("unix", to)
			if err != nil {
				in.Close()
				continue
			}
			r.mu.Lock()
			r.conns = append(r.conns, in, out)
			r.mu.Unlock()
			go func() { _, _ = io.Copy(out, in) }()
			go r.replies(out, in)
		}
	}()
	return r
}

func (r *waitRelay) replies(from io.Reader, to io.Writer) {
	br := bufio.NewReader(from)
	var wmu sync.Mutex
	for {
		line, err := br.ReadBytes('\n')
		if err != nil {
			return
		}
		write := func() { wmu.Lock(); _, _ = to.Write(line); wmu.Unlock() }
		r.mu.Lock()
		if r.on && bytes.Contains(line, []byte(`"result":{"seq":`)) {
			r.held = append(r.held, write)
			r.mu.Unlock()
			continue
		}
		r.mu.Unlock()
		write()
	}
}

func (r *waitRelay) hold() {
	r.mu.Lock()
	r.on = true
	r.mu.Unlock()
}

// release sends what was held, in order, and holds nothing more.
func (r *waitRelay) release() {
	r.mu.Lock()
	r.on = false
	held := r.held
	r.held = nil
	r.mu.Unlock()
	for _, w := range held {
		w()
	}
}

func (r *waitRelay) close() {
	r.l.Close()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.conns {
		c.Close()
	}
}
