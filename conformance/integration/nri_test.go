package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/nri/pkg/api"
	"github.com/containerd/nri/pkg/stub"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/huskrt/husk/conformance/huskdtest"
)

// nriPlugin is an NRI plugin in the test process: it records every event
// as "Event podOrContainerName", and adjusts or refuses containers by name.
type nriPlugin struct {
	mnt    string        // bind-mounted read-only at /nri-mnt into container "adjust"
	hang   chan struct{} // CreateContainer of container "hang" waits for it
	synced chan []string // the pods' and containers' names at Synchronize

	mu     sync.Mutex
	events []string
}

func (p *nriPlugin) record(ev, name string) {
	p.mu.Lock()
	p.events = append(p.events, ev+" "+name)
	p.mu.Unlock()
}

func (p *nriPlugin) seen() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.events)
}

func (p *nriPlugin) Synchronize(_ context.Context, pods []*api.PodSandbox, ctrs []*api.Container) ([]*api.ContainerUpdate, error) {
	var names []string
	for _, pod := range pods {
		names = append(names, "pod "+pod.GetName())
	}
	for _, c := range ctrs {
		names = append(names, "container "+c.GetName())
	}
	p.synced <- names
	return nil, nil
}

func (p *nriPlugin) RunPodSandbox(_ context.Context, pod *api.PodSandbox) error {
	p.record("RunPodSandbox", pod.GetName())
	return nil
}

func (p *nriPlugin) StopPodSandbox(_ context.Context, pod *api.PodSandbox) error {
	p.record("StopPodSandbox", pod.GetName())
	return nil
}

func (p *nriPlugin) RemovePodSandbox(_ context.Context, pod *api.PodSandbox) error {
	p.record("RemovePodSandbox", pod.GetName())
	return nil
}

func (p *nriPlugin) CreateContainer(ctx context.Context, _ *api.PodSandbox, c *api.Container) (*api.ContainerAdjustment, []*api.ContainerUpdate, error) {
	p.record("CreateContainer", c.GetName())
	switch c.GetName() {
	case "adjust":
		a := &api.ContainerAdjustment{}
		a.AddEnv("HUSK_NRI", "adjusted")
		a.AddMount(&api.Mount{Source: p.mnt, Destination: "/nri-mnt", Type: "bind", Options: []string{"rbind", "ro"}})
		a.AddAnnotation("husk.test/nri", "plugin")
		return a, nil, nil
	case "refuse":
		return nil, nil, errors.New("husk-test refuses this container")
	case "hang":
		select {
		case <-p.hang:
		case <-ctx.Done():
		}
	}
	return nil, nil, nil
}

func (p *nriPlugin) PostCreateContainer(_ context.Context, _ *api.PodSandbox, c *api.Container) error {
	p.record("PostCreateContainer", c.GetName())
	return nil
}

func (p *nriPlugin) StartContainer(_ context.Context, _ *api.PodSandbox, c *api.Container) error {
	p.record("StartContainer", c.GetName())
	return nil
}

func (p *nriPlugin) PostStartContainer(_ context.Context, _ *api.PodSandbox, c *api.Container) error {
	p.record("PostStartContainer", c.GetName())
	return nil
}

func (p *nriPlugin) StopContainer(_ context.Context, _ *api.PodSandbox, c *api.Container) ([]*api.ContainerUpdate, error) {
	p.record("StopContainer", c.GetName())
	return nil, nil
}

func (p *nriPlugin) RemoveContainer(_ context.Context, _ *api.PodSandbox, c *api.Container) error {
	p.record("RemoveContainer", c.GetName())
	return nil
}

// startNRIPlugin connects a plugin to huskd's NRI socket and returns once
// huskd has synchronized it, with the names it was told of.
func startNRIPlugin(t *testing.T, h *huskdtest.Huskd, name string, p *nriPlugin, opts ...stub.Option) []string {
	t.Helper()
	p.synced = make(chan []string, 1)
	s, err := stub.New(p, append([]stub.Option{stub.WithPluginName(name), stub.WithPluginIdx("10"),
		stub.WithSocketPath(h.NRISocket), stub.WithOnClose(func() {})}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := s.Start(ctx); err != nil {
		cancel()
		t.Fatalf("starting NRI plugin %s: %v", name, err)
	}
	t.Cleanup(func() { cancel(); s.Stop() })
	select {
	case names := <-p.synced:
		return names
	case <-time.After(10 * time.Second):
		t.Fatalf("NRI plugin %s: no Synchronize within 10s", name)
		return nil
	}
}

// An NRI plugin connected to huskd's socket adjusts a container (an env
// var, a read-only bind mount, an annotation in its OCI spec), refuses
// another (CreateContainer fails FailedPrecondition with the plugin's
// words, and nothing of it is left), and hears every step of the pod and
// of its container in order. A plugin that comes later is told of the
// pod and container that exist.
func TestNRIPlugin(t *testing.T) {
	h, _ := ctrHuskd(t, "")
	ctx := context.Background()
	p := &nriPlugin{mnt: t.TempDir()}
	if err := os.WriteFile(filepath.Join(p.mnt, "hello"), []byte("from-nri\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	startNRIPlugin(t, h, "husk-test", p)

	pod, podCfg := podWithLogs(t, h, "nri", nil)
	id := runCtr(t, h, pod, podCfg, ctrConfig("adjust", "sleep", "3600"))
	resp, err := execSync(t, h, id, 10, "sh", "-c", `echo "$HUSK_NRI" && cat /nri-mnt/hello && ! touch /nri-mnt/x`)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(resp.GetStdout()); resp.GetExitCode() != 0 || got != "adjusted\nfrom-nri\n" {
		t.Errorf("in the container: exit %d, stdout %q, stderr %q; want the plugin's env var and read-only mount",
			resp.GetExitCode(), got, resp.GetStderr())
	}
	b, err := os.ReadFile(filepath.Join(h.State, "pods", pod, "containers", id, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var spec specs.Spec
	if err := json.Unmarshal(b, &spec); err != nil {
		t.Fatal(err)
	}
	if got := spec.Annotations["husk.test/nri"]; got != "plugin" {
		t.Errorf("OCI spec annotation husk.test/nri = %q; want the plugin's %q", got, "plugin")
	}

	_, err = h.Runtime.CreateContainer(ctx, pod, ctrConfig("refuse", "sleep", "3600"), podCfg)
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "husk-test refuses this container") {
		t.Errorf("CreateContainer of a refused container: %v; want FailedPrecondition with the plugin's error", err)
	}
	if ctrs, err := h.Runtime.ListContainers(ctx, nil); err != nil || len(ctrs) != 1 {
		t.Errorf("ListContainers: %d, %v; want only the adjusted container", len(ctrs), err)
	}
	if left, _ := filepath.Glob(filepath.Join(h.Root, "containers", "*")); len(left) != 1 {
		t.Errorf("container dirs: %v; want the adjusted container's only", left)
	}

	late := &nriPlugin{}
	synced := startNRIPlugin(t, h, "husk-late", late)
	slices.Sort(synced)
	if want := []string{"container adjust", "pod nri"}; !slices.Equal(synced, want) {
		t.Errorf("a late plugin's Synchronize was told of %v; want %v", synced, want)
	}

	if err := h.Runtime.StopPodSandbox(ctx, pod); err != nil {
		t.Fatal(err)
	}
	if err := h.Runtime.RemovePodSandbox(ctx, pod); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"RunPodSandbox nri",
		"CreateContainer adjust", "PostCreateContainer adjust", "StartContainer adjust", "PostStartContainer adjust",
		// The refused container's rollback: every plugin hears it is gone.
		"CreateContainer refuse", "StopContainer refuse", "RemoveContainer refuse",
		"StopContainer adjust", "StopPodSandbox nri", "RemoveContainer adjust", "RemovePodSandbox nri",
	}
	huskdtest.Eventually(t, 10*time.Second, fmt.Sprintf("the plugin heard %v; want %v", p.seen(), want), func() bool {
		return slices.Equal(p.seen(), want)
	})
	if got := late.seen(); !slices.Equal(got, want[len(want)-4:]) {
		t.Errorf("the late plugin heard %v; want %v", got, want[len(want)-4:])
	}
	if leaks := h.Leaks(); len(leaks) != 0 {
		t.Errorf("left: %v", leaks)
	}
}

// A plugin that does not answer within plugin_request_timeout (2s) does
// not hold huskd: by the NRI library's rule it is dropped, and the call
// goes on without it, unless its failure policy says fail_request: then
// the call fails, and nothing of the container is left.
func TestNRIPluginTimeout(t *testing.T) {
	h, _ := ctrHuskd(t, "")
	ctx := context.Background()
	pod, podCfg := podWithLogs(t, h, "nri-hang", nil)
	for _, failRequest := range []bool{true, false} {
		p := &nriPlugin{hang: make(chan struct{})}
		defer close(p.hang)
		var opts []stub.Option
		if failRequest {
			opts = append(opts, stub.WithFailurePolicy(&api.FailurePolicy{FailRequest: true}))
		}
		startNRIPlugin(t, h, fmt.Sprintf("husk-hang-%v", failRequest), p, opts...)

		start := time.Now()
		id, err := h.Runtime.CreateContainer(ctx, pod, ctrConfig("hang", "sleep", "3600"), podCfg)
		took := time.Since(start)
		t.Logf("fail_request %v: CreateContainer with a hanging plugin: %v after %v", failRequest, err, took)
		if took > 10*time.Second {
			t.Errorf("fail_request %v: CreateContainer took %v; want about the 2s request timeout", failRequest, took)
		}
		if failRequest {
			if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "husk-hang-true") {
				t.Errorf("CreateContainer: %v; want FailedPrecondition naming the plugin", err)
			}
			if ctrs, err := h.Runtime.ListContainers(ctx, nil); err != nil || len(ctrs) != 0 {
				t.Errorf("ListContainers: %d, %v; want none", len(ctrs), err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("CreateContainer: %v; want the container, without the dropped plugin", err)
		}
		if err := h.Runtime.StartContainer(ctx, id); err != nil {
			t.Fatal(err)
		}
		if got := p.seen(); !slices.Equal(got, []string{"CreateContainer hang"}) {
			t.Errorf("the dropped plugin heard %v; want only the CreateContainer it did not answer", got)
		}
	}
	if err := h.Runtime.StopPodSandbox(ctx, pod); err != nil {
		t.Fatal(err)
	}
	if err := h.Runtime.RemovePodSandbox(ctx, pod); err != nil {
		t.Fatal(err)
	}
	if leaks := h.Leaks(); len(leaks) != 0 {
		t.Errorf("left: %v", leaks)
	}
}
