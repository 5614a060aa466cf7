package integration

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/huskrt/husk/conformance/huskdtest"
)

// collector is an OTLP/gRPC trace receiver, as an OpenTelemetry
// Collector's: it keeps the spans of the service huskd.
type collector struct {
	coltracepb.UnimplementedTraceServiceServer
	mu    sync.Mutex
	spans []*tracepb.Span
}

func (c *collector) Export(_ context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		service := ""
		for _, a := range rs.GetResource().GetAttributes() {
			if a.GetKey() == "service.name" {
				service = a.GetValue().GetStringValue()
			}
		}
		if service != "huskd" {
			continue
		}
		for _, ss := range rs.GetScopeSpans() {
			c.spans = append(c.spans, ss.GetSpans()...)
		}
	}
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

// find returns the span of trace named name (a suffix of the name for a
// CRI call), or nil.
func (c *collector) find(trace []byte, name string) *tracepb.Span {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.spans {
		if bytes.Equal(s.GetTraceId(), trace) && (s.GetName() == name || strings.HasSuffix(s.GetName(), "/"+name)) {
			return s
		}
	}
	return nil
}

func (c *collector) ofTrace(trace []byte) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var names []string
	for _, s := range c.spans {
		if bytes.Equal(s.GetTraceId(), trace) {
			names = append(names, s.GetName())
		}
	}
	return names
}

func startCollector(t *testing.T) (*collector, string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &collector{}
	g := grpc.NewServer()
	coltracepb.RegisterTraceServiceServer(g, c)
	go func() { _ = g.Serve(l) }()
	t.Cleanup(g.Stop)
	return c, l.Addr().String()
}

// kubeletTrace is a call context carrying a caller's span, as kubelet
// sends it over gRPC when its own tracing is on: W3C traceparent.
func kubeletTrace(t *testing.T, sampled bool) (ctx context.Context, trace, parent []byte) {
	trace, parent = make([]byte, 16), make([]byte, 8)
	_, _ = rand.Read(trace)
	_, _ = rand.Read(parent)
	flags := "00"
	if sampled {
		flags = "01"
	}
	md := metadata.Pairs("traceparent", fmt.Sprintf("00-%x-%x-%s", trace, parent, flags))
	ctx, cancel := context.WithTimeout(metadata.NewOutgoingContext(context.Background(), md), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx, trace, parent
}

// With [tracing] endpoint set, one RunPodSandbox reaches the collector as
// a span that continues kubelet's trace, with the sandbox's creation and
// its steps (shim start, CNI ADD) as children; StopPodSandbox has its shim
// call and CNI DEL as children; a call kubelet did not sample leaves no
// span.
func TestTracingRunPodSandbox(t *testing.T) {
	col, addr := startCollector(t)
	h := huskdtest.Start(t, huskdtest.Config(t, fmt.Sprintf("[tracing]\nendpoint = %q\n", "http://"+addr))...)
	if !strings.Contains(h.Log(), "Exporting trace spans") {
		t.Fatalf("huskd does not say it exports spans:\n%s", h.Log())
	}

	ctx, trace, parent := kubeletTrace(t, true)
	resp, err := h.Raw.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: huskdtest.PodConfig("traced")})
	if err != nil {
		t.Fatal(err)
	}
	id := resp.GetPodSandboxId()
	t.Cleanup(func() {
		_ = h.Runtime.StopPodSandbox(context.Background(), id)
		_ = h.Runtime.RemovePodSandbox(context.Background(), id)
	})
	// Not sampled by kubelet, then sampled: spans are exported in the
	// order they end, so once the second's are there the first's would be.
	uctx, untraced, _ := kubeletTrace(t, false)
	if _, err := h.Raw.PodSandboxStatus(uctx, &runtime.PodSandboxStatusRequest{PodSandboxId: id}); err != nil {
		t.Fatal(err)
	}
	sctx, stop, _ := kubeletTrace(t, true)
	if _, err := h.Raw.StopPodSandbox(sctx, &runtime.StopPodSandboxRequest{PodSandboxId: id}); err != nil {
		t.Fatal(err)
	}

	steps := []string{"RunPodSandbox", "sandbox.create", "shim.start", "cni.add"}
	stopSteps := []string{"StopPodSandbox", "shim.Stop", "cni.del"}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("spans of RunPodSandbox: %v; of StopPodSandbox: %v", col.ofTrace(trace), col.ofTrace(stop))
		}
	})
	huskdtest.Eventually(t, 30*time.Second, fmt.Sprintf("the collector has spans %v of RunPodSandbox and %v of StopPodSandbox", steps, stopSteps), func() bool {
		for _, s := range steps {
			if col.find(trace, s) == nil {
				return false
			}
		}
		for _, s := range stopSteps {
			if col.find(stop, s) == nil {
				return false
			}
		}
		return true
	})
	call, create := col.find(trace, "RunPodSandbox"), col.find(trace, "sandbox.create")
	if call.GetName() != "runtime.v1.RuntimeService/RunPodSandbox" || call.GetKind() != tracepb.Span_SPAN_KIND_SERVER {
		t.Errorf("call span: %s, kind %s", call.GetName(), call.GetKind())
	}
	if !bytes.Equal(call.GetParentSpanId(), parent) {
		t.Errorf("RunPodSandbox's span has parent %x, not the caller's span %x", call.GetParentSpanId(), parent)
	}
	if !bytes.Equal(create.GetParentSpanId(), call.GetSpanId()) {
		t.Errorf("sandbox.create's parent is %x, not RunPodSandbox's span %x", create.GetParentSpanId(), call.GetSpanId())
	}
	podID := ""
	for _, a := range create.GetAttributes() {
		if a.GetKey() == "podSandboxID" {
			podID = a.GetValue().GetStringValue()
		}
	}
	if podID != id {
		t.Errorf("sandbox.create has podSandboxID %q, want %q", podID, id)
	}
	for _, s := range steps[2:] {
		if sp := col.find(trace, s); !bytes.Equal(sp.GetParentSpanId(), create.GetSpanId()) {
			t.Errorf("%s's parent is %x, not sandbox.create's span %x", s, sp.GetParentSpanId(), create.GetSpanId())
		}
	}
	for _, s := range stopSteps[1:] {
		if sp := col.find(stop, s); !bytes.Equal(sp.GetParentSpanId(), col.find(stop, "StopPodSandbox").GetSpanId()) {
			t.Errorf("%s is not a child of StopPodSandbox's span", s)
		}
	}
	if got := col.ofTrace(untraced); len(got) != 0 {
		t.Errorf("a call kubelet did not sample left spans %v", got)
	}
	t.Logf("spans of RunPodSandbox: %v; of StopPodSandbox: %v", col.ofTrace(trace), col.ofTrace(stop))
}
