package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/huskrt/husk/conformance/huskdtest"
	"github.com/huskrt/husk/conformance/images"
)

// hostPort is the seed pod's published port; the scenario fixes it, as a
// user's manifest would.
const hostPort = 8080

var hostURL = fmt.Sprintf("http://127.0.0.1:%d/", hostPort)

// get fetches url on a new connection each time: a kept-alive one would
// still reach a pod the port no longer leads to.
func get(url string) (string, error) {
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s: %s", url, resp.Status, b)
	}
	return string(b), nil
}

// natRules is the host's nat table (IPv4 and IPv6), where portmap writes.
func natRules(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	for _, cmd := range []string{"iptables-save", "ip6tables-save"} {
		out, err := exec.Command(cmd, "-t", "nat").Output()
		if err != nil {
			t.Fatalf("%s: %v", cmd, err)
		}
		b.Write(out)
	}
	return b.String()
}

// hostPortFree fails the test unless nothing on the host listens on
// hostPort and no other pod maps it: the scenario would then measure
// someone else's port.
func hostPortFree(t *testing.T) {
	t.Helper()
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", hostPort))
	if err != nil {
		t.Fatalf("port %d of the host is taken, the seed pod needs it: %v", hostPort, err)
	}
	l.Close()
	for _, line := range strings.Split(natRules(t), "\n") {
		if strings.Contains(line, fmt.Sprintf("--dport %d ", hostPort)) {
			t.Fatalf("another pod maps hostPort %d: %s", hostPort, line)
		}
	}
}

// The seed pod: the pause-container pattern as users meet it. A pod
// publishes hostPort 8080 to port 80, where container "proxy" forwards to
// container "blog" on the pod's loopback; the two share the pod's network
// and PID namespaces, held by husk's pause.
func TestSeedPod(t *testing.T) {
	huskdtest.Bin(t)
	hostPortFree(t)
	h := startHuskd(t, "")
	ctx := context.Background()

	podCfg := sharedPIDPod(t, "seed")
	podCfg.PortMappings = []*runtime.PortMapping{{Protocol: runtime.Protocol_TCP, ContainerPort: 80, HostPort: hostPort}}
	pod := h.RunPod(podCfg)
	// Unique, so that no other server on the port can pass for blog.
	page := fmt.Sprintf("seed blog %d", time.Now().UnixNano())
	// blog listens on the pod's loopback only: the host can reach it only
	// through proxy, and proxy only because they share a network namespace.
	runCtr(t, h, pod, podCfg, "blog", "husktest", "serve", "127.0.0.1:2368", page)
	proxy := runCtr(t, h, pod, podCfg, "proxy", "husktest", "proxy", ":80", "127.0.0.1:2368")

	t.Run("hostPort reaches blog through proxy", func(t *testing.T) {
		var body string
		var err error
		// The servers start listening some time after StartContainer.
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			if body, err = get(hostURL); err == nil && body == page {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("GET %s: %q, %v; want blog's page %q", hostURL, body, err, page)
			}
		}
	})

	t.Run("ps in proxy shows the pause as PID 1 and blog", func(t *testing.T) {
		ps := procs(t, h, proxy)
		var pause, blog bool
		for _, p := range ps {
			pause = pause || (p.pid == 1 && p.args == "/pause")
			blog = blog || strings.HasPrefix(p.args, "husktest serve 127.0.0.1:2368")
		}
		if !pause || !blog {
			t.Errorf("ps in proxy: pause as PID 1 %v, blog %v:\n%v", pause, blog, ps)
		}
	})

	t.Run("the pause reaps orphans", func(t *testing.T) {
		if err := killOrphan(t, h, proxy, orphan(t, h, proxy), 10*time.Second); err != nil {
			t.Errorf("the pause did not reap: %v", err)
		}
	})

	t.Run("stopping the pod frees hostPort", func(t *testing.T) {
		if !strings.Contains(natRules(t), pod) {
			t.Fatalf("no nat rule names pod %s: checking that they are gone would prove nothing", pod)
		}
		// portmap holds no socket on the host, so a host server can listen
		// on the port while the pod publishes it; its rules send the
		// traffic to the pod all the same. Who answers shows whose port it is.
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", hostPort))
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			_, _ = io.WriteString(w, "the host")
		})}
		go func() { _ = srv.Serve(l) }()
		defer srv.Close()
		if body, err := get(hostURL); body != page {
			t.Fatalf("with the pod running, GET %s: %q, %v; want blog's page", hostURL, body, err)
		}

		if err := h.Runtime.StopPodSandbox(ctx, pod); err != nil {
			t.Fatalf("StopPodSandbox: %v", err)
		}
		if body, err := get(hostURL); body != "the host" {
			t.Errorf("after StopPodSandbox, GET %s: %q, %v; want the host's server", hostURL, body, err)
		}
		if err := h.Runtime.RemovePodSandbox(ctx, pod); err != nil {
			t.Fatalf("RemovePodSandbox: %v", err)
		}
		if rules := natRules(t); strings.Contains(rules, pod) {
			t.Errorf("nat rules still name pod %s:\n%s", pod, rules)
		}
		if leaks := h.Leaks(); len(leaks) != 0 {
			t.Errorf("left after removing the pod: %v", leaks)
		}
	})
}

// The zombie check above can fail: under a pause that never reaps, the
// orphan it kills stays a zombie.
func TestZombieCheckCatchesANonReapingPause(t *testing.T) {
	huskdtest.Bin(t)
	// husktest is such a pause when it runs under the name "pause".
	pausePath := filepath.Join(t.TempDir(), "pause")
	if err := os.WriteFile(pausePath, images.TestBinary(t), 0o755); err != nil {
		t.Fatal(err)
	}
	h := startHuskd(t, fmt.Sprintf("[runtime]\npause_path = %q\n", pausePath))
	podCfg := sharedPIDPod(t, "no-reaper")
	pod := h.RunPod(podCfg)
	ctr := runCtr(t, h, pod, podCfg, "sleeper", "sleep", "1000")
	err := killOrphan(t, h, ctr, orphan(t, h, ctr), time.Second)
	if err == nil || !strings.Contains(err.Error(), "Z") {
		t.Errorf("killOrphan under a pause that does not reap: %v, want a zombie reported", err)
	}
}
