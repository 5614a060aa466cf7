package integration

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/gorilla/websocket"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/huskrt/husk/conformance/huskdtest"
)

// crictlCmd is crictl against h, not started.
func crictlCmd(t *testing.T, h *huskdtest.Huskd, args ...string) *exec.Cmd {
	t.Helper()
	bin := os.Getenv("HUSK_CRICTL")
	if bin == "" {
		t.Skip("HUSK_CRICTL is not set: run through `make test`, which builds crictl")
	}
	cmd := exec.Command(bin, append([]string{"--runtime-endpoint", "unix://" + h.Sock, "--image-endpoint", "unix://" + h.Sock, "--timeout", "60s"}, args...)...)
	cmd.Env = append(os.Environ(), "CRI_CONFIG_FILE=/dev/null")
	return cmd
}

// runCrictl runs crictl with stdin and returns its stdout, stderr and
// error (an *exec.ExitError carries its exit code).
func runCrictl(t *testing.T, h *huskdtest.Huskd, stdin string, args ...string) (string, string, error) {
	t.Helper()
	cmd := crictlCmd(t, h, args...)
	var out, errOut bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = strings.NewReader(stdin), &out, &errOut
	err := cmd.Run()
	return out.String(), errOut.String(), err
}

// terminal is crictl run on a pseudo-terminal, as a person at a shell runs
// it: what it prints accumulates in out.
type terminal struct {
	t    *testing.T
	cmd  *exec.Cmd
	ptmx *os.File
	mu   sync.Mutex
	out  bytes.Buffer
	done chan struct{}
}

func startTerminal(t *testing.T, h *huskdtest.Huskd, rows, cols uint16, args ...string) *terminal {
	t.Helper()
	cmd := crictlCmd(t, h, args...)
	ptmx, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: rows, Cols: cols})
	if err != nil {
		t.Fatal(err)
	}
	term := &terminal{t: t, cmd: cmd, ptmx: ptmx, done: make(chan struct{})}
	go func() {
		defer close(term.done)
		buf := make([]byte, 4096)
		for {
			n, err := ptmx.Read(buf)
			term.mu.Lock()
			term.out.Write(buf[:n])
			term.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		ptmx.Close()
	})
	return term
}

func (term *terminal) output() string {
	term.mu.Lock()
	defer term.mu.Unlock()
	return term.out.String()
}

func (term *terminal) send(s string) {
	if _, err := term.ptmx.WriteString(s); err != nil {
		term.t.Fatal(err)
	}
}

// expect waits until the terminal has shown want.
func (term *terminal) expect(want string) {
	term.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(term.output(), want) {
		if time.Now().After(deadline) {
			term.t.Fatalf("the terminal never showed %q; it shows:\n%s", want, term.output())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// exit waits for crictl to end and returns its exit code.
func (term *terminal) exit() int {
	term.t.Helper()
	errc := make(chan error, 1)
	go func() { errc <- term.cmd.Wait() }()
	select {
	case err := <-errc:
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		}
		if err != nil {
			term.t.Fatal(err)
		}
		return 0
	case <-time.After(15 * time.Second):
		term.t.Fatalf("crictl did not end; the terminal shows:\n%s", term.output())
		return -1
	}
}

func TestCrictlExec(t *testing.T) {
	h, _ := ctrHuskd(t, "")
	pod, id := sleeperPod(t, h, "crictl-exec", nil)
	_, info := h.PodInfo(pod)
	// crictl's websocket transport speaks only v5.channel.k8s.io, which
	// apiservers translate to SPDY and runtimes' streaming servers do not
	// serve; TestWebSocketClients covers websocket.
	for _, transport := range []string{"spdy"} {
		t.Run(transport, func(t *testing.T) {
			out, errOut, err := runCrictl(t, h, "", "exec", "-r", transport, id, "sh", "-c", "echo out; echo err >&2")
			if err != nil || out != "out\n" || !strings.Contains(errOut, "err\n") {
				t.Errorf("crictl exec: %q, %q, %v", out, errOut, err)
			}
			// stdin, to its end.
			out, _, err = runCrictl(t, h, "line one\nline two\n", "exec", "-i", "-r", transport, id, "sh", "-c", "cat; echo eof")
			if err != nil || out != "line one\nline two\neof\n" {
				t.Errorf("crictl exec -i: %q, %v", out, err)
			}
			_, errOut, err = runCrictl(t, h, "", "exec", "-r", transport, id, "sh", "-c", "exit 7")
			if err == nil || !strings.Contains(errOut, "7") {
				t.Errorf("crictl exec of exit 7: %v, %q; want a failure that names the code", err, errOut)
			}
		})
	}
	t.Run("sync", func(t *testing.T) {
		out, _, err := runCrictl(t, h, "", "exec", "-s", id, "echo", "synced")
		if err != nil || strings.TrimSpace(out) != "synced" {
			t.Errorf("crictl exec -s: %q, %v", out, err)
		}
		_, errOut, err := runCrictl(t, h, "", "exec", "-s", "--timeout", "1", id, "sleep", "98")
		if err == nil || !strings.Contains(errOut, "DeadlineExceeded") {
			t.Errorf("crictl exec -s --timeout 1 sleep 98: %v, %q; want DeadlineExceeded", err, errOut)
		}
		if n := running(t, h, id, "sleep 98"); n != 0 {
			t.Errorf("the timed-out exec still runs (%d)", n)
		}
	})
	if z := zombies(t, info.ShimPid); len(z) != 0 {
		t.Errorf("zombies left below the shim: %v", z)
	}
}

func TestCrictlExecTerminal(t *testing.T) {
	h, _ := ctrHuskd(t, "")
	pod, id := sleeperPod(t, h, "crictl-exec-tty", nil)
	_, info := h.PodInfo(pod)
	term := startTerminal(t, h, 30, 100, "exec", "-it", id, "sh")
	term.send("tty; stty size; echo marker-$((40+2))\n")
	term.expect("marker-42")
	if out := term.output(); !strings.Contains(out, "/dev/pts/") || !strings.Contains(out, "30 100") {
		t.Errorf("the exec'd shell has no terminal of the client's size:\n%s", out)
	}
	// The client's terminal changes size: so does the shell's.
	if err := pty.Setsize(term.ptmx, &pty.Winsize{Rows: 41, Cols: 123}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(term.output(), "41 123") && time.Now().Before(deadline) {
		term.send("stty size\n")
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(term.output(), "41 123") {
		t.Errorf("after a resize to 41x123 the shell shows:\n%s", term.output())
	}
	term.send("exit 3\n")
	if code := term.exit(); code == 0 {
		t.Errorf("crictl exec -it of a shell that exited 3 exited 0")
	}
	if z := zombies(t, info.ShimPid); len(z) != 0 {
		t.Errorf("zombies left below the shim: %v", z)
	}
}

func TestCrictlAttach(t *testing.T) {
	h, _ := ctrHuskd(t, "")
	t.Run("stdin", func(t *testing.T) {
		_, id := sleeperPod(t, h, "attach-stdin", func(c *runtime.ContainerConfig) {
			c.Command = []string{"sh"}
			c.Stdin = true
		})
		cmd := crictlCmd(t, h, "attach", "-i", id)
		in, _ := cmd.StdinPipe()
		var out safeBuffer
		cmd.Stdout = &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		// The first line may arrive before the attach has joined: keep
		// asking until the answer comes back.
		huskdtest.Eventually(t, 15*time.Second, "the attached shell answers", func() bool {
			fmt.Fprintln(in, "echo attached-$((40+2))")
			time.Sleep(100 * time.Millisecond)
			return strings.Contains(out.String(), "attached-42")
		})
		// Leaving the shell ends the container, and with it the attach.
		fmt.Fprintln(in, "exit 5")
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			t.Fatal("crictl attach did not end with the container")
		}
		if st := waitExited(t, h, id, 10*time.Second); st.ExitCode != 5 {
			t.Errorf("container exit code %d, want 5", st.ExitCode)
		}
	})
	t.Run("stdin once", func(t *testing.T) {
		_, id := sleeperPod(t, h, "attach-once", func(c *runtime.ContainerConfig) {
			c.Command = []string{"sh", "-c", "cat; echo cat-done"}
			c.Stdin, c.StdinOnce = true, true
		})
		out, _, err := runCrictl(t, h, "from the client\n", "attach", "-i", id)
		if err != nil || !strings.Contains(out, "from the client\ncat-done") {
			t.Errorf("crictl attach -i with stdin_once: %q, %v", out, err)
		}
		// The client's end of input was the container's: cat ended.
		if st := waitExited(t, h, id, 10*time.Second); st.ExitCode != 0 {
			t.Errorf("container exit code %d, want 0", st.ExitCode)
		}
	})
	t.Run("tty", func(t *testing.T) {
		_, id := sleeperPod(t, h, "attach-tty", func(c *runtime.ContainerConfig) {
			c.Command = []string{"sh"}
			c.Stdin, c.Tty = true, true
		})
		term := startTerminal(t, h, 25, 90, "attach", "-it", id)
		deadline := time.Now().Add(15 * time.Second)
		for !strings.Contains(term.output(), "25 90") && time.Now().Before(deadline) {
			term.send("stty size\n")
			time.Sleep(100 * time.Millisecond)
		}
		if err := pty.Setsize(term.ptmx, &pty.Winsize{Rows: 33, Cols: 111}); err != nil {
			t.Fatal(err)
		}
		for !strings.Contains(term.output(), "33 111") && time.Now().Before(deadline) {
			term.send("stty size\n")
			time.Sleep(100 * time.Millisecond)
		}
		if out := term.output(); !strings.Contains(out, "25 90") || !strings.Contains(out, "33 111") {
			t.Errorf("attached terminal sizes: want 25 90 then 33 111:\n%s", out)
		}
		term.send("exit\n")
		term.exit()
	})
	t.Run("no stdin", func(t *testing.T) {
		_, id := sleeperPod(t, h, "attach-none", nil)
		if _, err := h.Raw.Attach(context.Background(), &runtime.AttachRequest{ContainerId: id, Stdin: true, Stdout: true}); err == nil {
			t.Error("Attach with stdin to a container created without stdin succeeded")
		}
	})
}

type safeBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *safeBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *safeBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// portForward runs crictl port-forward to remote on pod and returns the
// local port it listens on.
func portForward(t *testing.T, h *huskdtest.Huskd, transport, pod string, remote int) int {
	t.Helper()
	local := huskdtest.FreePort(t)
	cmd := crictlCmd(t, h, "port-forward", "-r", transport, pod, fmt.Sprintf("%d:%d", local, remote))
	var out safeBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	huskdtest.Eventually(t, 15*time.Second, "crictl port-forward listens", func() bool {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", local))
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return local
}

func httpBody(t *testing.T, port int) string {
	t.Helper()
	var body string
	huskdtest.Eventually(t, 15*time.Second, fmt.Sprintf("127.0.0.1:%d answers", port), func() bool {
		c := &http.Client{Timeout: 3 * time.Second}
		resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/", port))
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		body = string(b)
		return resp.StatusCode == http.StatusOK
	})
	return body
}

func TestCrictlPortForward(t *testing.T) {
	h, _ := ctrHuskd(t, "")
	pod, podCfg := podWithLogs(t, h, "port-forward", nil)
	runCtr(t, h, pod, podCfg, webServer("web", "forwarded-page"))
	for _, transport := range []string{"spdy"} {
		t.Run(transport, func(t *testing.T) {
			local := portForward(t, h, transport, pod, 80)
			for i := 0; i < 3; i++ { // one session per connection
				if body := httpBody(t, local); body != "forwarded-page\n" {
					t.Errorf("through port-forward: %q", body)
				}
			}
		})
	}
	t.Run("host network", func(t *testing.T) {
		cfg := huskdtest.PodConfig("port-forward-host")
		cfg.LogDirectory = t.TempDir()
		cfg.Linux.SecurityContext.NamespaceOptions.Network = runtime.NamespaceMode_NODE
		hostPod := h.RunPod(cfg)
		port := huskdtest.FreePort(t)
		runCtr(t, h, hostPod, cfg, ctrConfig("web", "sh", "-c", fmt.Sprintf("mkdir -p /www && echo host-page > /www/index.html && exec httpd -f -p 127.0.0.1:%d -h /www", port)))
		local := portForward(t, h, "spdy", hostPod, port)
		if body := httpBody(t, local); body != "host-page\n" {
			t.Errorf("through port-forward to a host-network pod: %q", body)
		}
	})
}

// An exec session open when huskd dies ends; the container goes on, and
// the exec'd process is gone.
func TestExecSessionEndsWhenHuskdRestarts(t *testing.T) {
	h, _ := ctrHuskd(t, "")
	pod, id := sleeperPod(t, h, "exec-restart", nil)
	_, info := h.PodInfo(pod)
	cmd := crictlCmd(t, h, "exec", id, "sleep", "999")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	huskdtest.Eventually(t, 10*time.Second, "the exec runs", func() bool {
		return running(t, h, id, "sleep 999") == 1
	})
	h.Kill()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("crictl exec still runs after huskd died")
	}
	h.Launch()
	huskdtest.Eventually(t, 10*time.Second, "the exec'd process is gone", func() bool {
		return running(t, h, id, "sleep 999") == 0
	})
	if st := ctrStatus(t, h, id); st.State != runtime.ContainerState_CONTAINER_RUNNING {
		t.Errorf("container is %v after huskd's restart", st.State)
	}
	if z := zombies(t, info.ShimPid); len(z) != 0 {
		t.Errorf("zombies left below the shim: %v", z)
	}
}

// selfSigned writes a certificate and key for 127.0.0.1 into dir.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "husk streaming"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	_ = os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	_ = os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	return certFile, keyFile
}

func TestStreamingOverTLS(t *testing.T) {
	cert, key := selfSigned(t, t.TempDir())
	h, _ := ctrHuskd(t, fmt.Sprintf("[streaming]\ntls_cert_file = %q\ntls_key_file = %q\n", cert, key))
	_, id := sleeperPod(t, h, "exec-tls", nil)
	resp, err := h.Raw.Exec(context.Background(), &runtime.ExecRequest{ContainerId: id, Cmd: []string{"true"}, Stdout: true})
	if err != nil || !strings.HasPrefix(resp.GetUrl(), "https://127.0.0.1:") {
		t.Fatalf("Exec URL %q, %v; want https on loopback", resp.GetUrl(), err)
	}
	if out, _, err := runCrictl(t, h, "", "exec", id, "echo", "over-tls"); err != nil || out != "over-tls\n" {
		t.Errorf("crictl exec over TLS: %q, %v", out, err)
	}
}

// wsSession speaks the channel.k8s.io websocket protocol (v4) of the
// streaming server, as pre-1.30 kubectl and apiservers do: every message
// is a channel number and its data.
func wsSession(t *testing.T, url string, send map[byte]string) map[byte]string {
	t.Helper()
	d := websocket.Dialer{Subprotocols: []string{"v4.channel.k8s.io"}, HandshakeTimeout: 10 * time.Second}
	conn, resp, err := d.Dial(strings.Replace(url, "http://", "ws://", 1), nil)
	if err != nil {
		t.Fatalf("websocket dial %s: %v (%v)", url, err, resp)
	}
	defer conn.Close()
	if conn.Subprotocol() != "v4.channel.k8s.io" {
		t.Errorf("negotiated %q", conn.Subprotocol())
	}
	for ch, data := range send {
		if err := conn.WriteMessage(websocket.BinaryMessage, append([]byte{ch}, data...)); err != nil {
			t.Fatal(err)
		}
	}
	got := map[byte]string{}
	_ = conn.SetReadDeadline(time.Now().Add(15 * time.Second))
	for {
		_, msg, err := conn.ReadMessage()
		if err != nil {
			return got
		}
		if len(msg) > 0 {
			got[msg[0]] += string(msg[1:])
		}
	}
}

func TestWebSocketClients(t *testing.T) {
	h, _ := ctrHuskd(t, "")
	pod, podCfg := podWithLogs(t, h, "websocket", nil)
	runCtr(t, h, pod, podCfg, webServer("web", "ws-page"))
	id := runCtr(t, h, pod, podCfg, ctrConfig("sleeper", "sleep", "3600"))
	ctx := context.Background()

	resp, err := h.Raw.Exec(ctx, &runtime.ExecRequest{ContainerId: id, Cmd: []string{"sh", "-c", "head -n 1; echo err >&2; exit 4"}, Stdin: true, Stdout: true, Stderr: true})
	if err != nil {
		t.Fatal(err)
	}
	got := wsSession(t, resp.Url, map[byte]string{0: "through a websocket\n"})
	if got[1] != "through a websocket\n" || got[2] != "err\n" || !strings.Contains(got[3], "NonZeroExitCode") || !strings.Contains(got[3], `"message":"4"`) {
		t.Errorf("websocket exec: stdout %q, stderr %q, status %q", got[1], got[2], got[3])
	}

	pf, err := h.Raw.PortForward(ctx, &runtime.PortForwardRequest{PodSandboxId: pod, Port: []int32{80}})
	if err != nil {
		t.Fatal(err)
	}
	got = wsSession(t, pf.Url+"?port=80", map[byte]string{0: "GET / HTTP/1.0\r\n\r\n"})
	// Each channel starts with its port, little endian.
	if !strings.HasPrefix(got[0], "\x50\x00") || !strings.HasSuffix(got[0], "ws-page\n") {
		t.Errorf("websocket port-forward: data %q, error %q", got[0], got[1])
	}
}
