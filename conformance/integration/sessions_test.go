package integration

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/huskrt/husk/conformance/huskdtest"
	"github.com/huskrt/husk/shim/shimapi"
)

// holdings is what a pod's exec and attach sessions could leave behind,
// in its shim and in huskd.
type holdings struct {
	shim        shimapi.StatsReply
	huskdGorout int
	huskdFDs    int
}

func (x holdings) String() string {
	return fmt.Sprintf("shim: %d goroutines, %d fds, live heap %.2f MiB (in use %.2f), %d sessions; huskd: %d goroutines, %d fds",
		x.shim.Goroutines, x.shim.FDs, float64(x.shim.HeapAlloc)/(1<<20), float64(x.shim.HeapInuse)/(1<<20), x.shim.Sessions, x.huskdGorout, x.huskdFDs)
}

// Every exec and attach session ends whole, whatever the order of exit,
// kill and hang-up (issue 13, finding 5; the class of containerd's
// CVE-2025-64329): a pod's author chooses its probes' timing, so a leak
// per racing session is a leak a pod can drive. 500 ExecSyncs whose
// timeout kill races their own exit, then 50 attaches idle on a container
// that never reads its stdin, with more input queued than the pipes hold,
// all hung up: the shim's goroutines, descriptors and heap and huskd's
// goroutines and descriptors come back to where they were.
func TestShimSessionsLeaveNothing(t *testing.T) {
	port := huskdtest.FreePort(t)
	h, _ := ctrHuskd(t, fmt.Sprintf("[debug]\npprof_address = \"127.0.0.1:%d\"\n", port))
	pod, podCfg := podWithLogs(t, h, "sessions", nil)
	deaf := ctrConfig("deaf", "sleep", "3600")
	deaf.Stdin = true
	id := runCtr(t, h, pod, podCfg, deaf)

	ctx := context.Background()
	shim, err := shimapi.Dial(ctx, filepath.Join(h.State, "pods", pod, shimapi.SocketName))
	if err != nil {
		t.Fatal(err)
	}
	defer shim.Close()
	measure := func() holdings {
		t.Helper()
		st, err := shim.Stats(ctx)
		if err != nil {
			t.Fatalf("shim Stats: %v", err)
		}
		fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", h.PID()))
		if err != nil {
			t.Fatal(err)
		}
		return holdings{shim: st, huskdGorout: huskdGoroutines(t, port), huskdFDs: len(fds)}
	}
	// settled waits until no session is open and what is held is back
	// within the margins of base.
	settled := func(what string, base holdings) {
		t.Helper()
		var now holdings
		within := func() bool {
			now = measure()
			return now.shim.Sessions == 0 &&
				now.shim.Goroutines <= base.shim.Goroutines+2 &&
				now.shim.FDs <= base.shim.FDs &&
				now.shim.HeapAlloc <= base.shim.HeapAlloc+1<<20 &&
				now.huskdGorout <= base.huskdGorout+5 &&
				now.huskdFDs <= base.huskdFDs+2
		}
		deadline := time.Now().Add(30 * time.Second)
		for !within() {
			if time.Now().After(deadline) {
				t.Fatalf("after %s, sessions left something behind:\nbefore: %s\nafter:  %s", what, base, now)
			}
			time.Sleep(200 * time.Millisecond)
		}
		t.Logf("after %s: %s (before: %s)", what, now, base)
	}

	// Warm up: the first sessions allocate what every later one reuses.
	racingExecs(t, h, id, 16)
	idleAttaches(t, h, id, 2, func() {})
	huskdtest.Eventually(t, 30*time.Second, "the warm-up sessions to end", func() bool { return measure().shim.Sessions == 0 })
	base := measure()

	racingExecs(t, h, id, 500)
	settled("500 execs whose kill raced their exit", base)

	idleAttaches(t, h, id, 50, func() {
		huskdtest.Eventually(t, 30*time.Second, "50 attaches to be open in the shim", func() bool { return measure().shim.Sessions == 50 })
	})
	settled("50 idle attaches hung up", base)

	if st := ctrStatus(t, h, id); st.GetState() != runtime.ContainerState_CONTAINER_RUNNING {
		t.Errorf("the container is %s after the sessions; want it running", st.GetState())
	}
}

// racingExecs runs n ExecSyncs with a one-second timeout, 16 at a time,
// each of a process that exits within 30 ms either side of its kill.
func racingExecs(t *testing.T, h *huskdtest.Huskd, id string, n int) {
	t.Helper()
	var (
		mu               sync.Mutex
		exited, timedOut int
		unexpected       []string
	)
	work := make(chan int)
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				offset := time.Duration(i%61-30) * time.Millisecond
				until := time.Now().Add(time.Second + offset).UnixNano()
				resp, err := h.Raw.ExecSync(context.Background(), &runtime.ExecSyncRequest{
					ContainerId: id, Cmd: []string{"husktest", "sleep-until", strconv.FormatInt(until, 10)}, Timeout: 1,
				})
				mu.Lock()
				switch {
				case err == nil && resp.GetExitCode() == 0:
					exited++
				case status.Code(err) == codes.DeadlineExceeded:
					timedOut++
				default:
					unexpected = append(unexpected, fmt.Sprintf("exit %d, %v", resp.GetExitCode(), err))
				}
				mu.Unlock()
			}
		}()
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	if len(unexpected) > 0 {
		t.Errorf("%d of %d racing execs ended neither with their exit nor with a timeout, e.g. %s", len(unexpected), n, unexpected[0])
	}
	t.Logf("%d racing execs: %d exited, %d killed at their timeout", n, exited, timedOut)
}

// idleAttaches opens n attaches (websocket, as kubectl attach through an
// apiserver) to a container that never reads its stdin, each sending
// 32 KiB of input (after the first two, the container's stdin is full and
// the shim's copies are blocked on it), calls open while they are all
// open and idle, then hangs them all up.
func idleAttaches(t *testing.T, h *huskdtest.Huskd, id string, n int, open func()) {
	t.Helper()
	conns := make([]*websocket.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	input := make([]byte, 8<<10)
	for range n {
		resp, err := h.Raw.Attach(context.Background(), &runtime.AttachRequest{ContainerId: id, Stdin: true, Stdout: true, Stderr: true})
		if err != nil {
			t.Fatal(err)
		}
		d := websocket.Dialer{Subprotocols: []string{"v4.channel.k8s.io"}, HandshakeTimeout: 10 * time.Second}
		c, hresp, err := d.Dial(strings.Replace(resp.Url, "http://", "ws://", 1), nil)
		if err != nil {
			t.Fatalf("websocket attach: %v (%v)", err, hresp)
		}
		conns = append(conns, c)
		_ = c.SetWriteDeadline(time.Now().Add(10 * time.Second))
		for range 4 {
			if err := c.WriteMessage(websocket.BinaryMessage, append([]byte{0}, input...)); err != nil {
				t.Fatalf("attach %d: sending input: %v", len(conns), err)
			}
		}
	}
	open()
}

// huskdGoroutines reads huskd's goroutine count from its pprof endpoint.
func huskdGoroutines(t *testing.T, port int) int {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/goroutine?debug=1", port))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	line, _ := bufio.NewReader(resp.Body).ReadString('\n')
	n, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "goroutine profile: total ")))
	if err != nil {
		t.Fatalf("huskd's goroutine profile begins %q", line)
	}
	return n
}
