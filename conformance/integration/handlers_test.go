package integration

import (
	"context"
	"slices"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/huskrt/husk/conformance/huskdtest"
)

// A runtime handler named in [runtime] handlers is served as husk's own:
// Status lists it and a pod of that RuntimeClass runs; a name not
// configured is refused (Kubernetes' node e2e suite runs its RuntimeClass
// and pod overhead specs with a handler "test-handler").
func TestConfiguredRuntimeHandler(t *testing.T) {
	h := huskdtest.Start(t, huskdtest.Config(t, "[runtime]\nhandlers = [\"test-handler\"]\n")...)
	ctx := context.Background()
	st, err := h.Raw.Status(ctx, &runtime.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, rh := range st.GetRuntimeHandlers() {
		names = append(names, rh.GetName())
	}
	if !slices.Equal(names, []string{"", "husk", "test-handler"}) {
		t.Errorf("Status lists handlers %q, want \"\", husk and test-handler", names)
	}
	id, err := h.Runtime.RunPodSandbox(ctx, huskdtest.PodConfig("handler"), "test-handler")
	if err != nil {
		t.Fatalf("RunPodSandbox with the configured handler: %v", err)
	}
	ps, err := h.Runtime.PodSandboxStatus(ctx, id, false)
	if err != nil {
		t.Fatal(err)
	}
	if got := ps.GetStatus().GetRuntimeHandler(); got != "test-handler" {
		t.Errorf("PodSandboxStatus runtime_handler %q, want test-handler", got)
	}
	_, err = h.Raw.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: huskdtest.PodConfig("other"), RuntimeHandler: "other-handler"})
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("RunPodSandbox with an unconfigured handler: %v, want InvalidArgument", err)
	}
	if err := h.Runtime.StopPodSandbox(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := h.Runtime.RemovePodSandbox(ctx, id); err != nil {
		t.Fatal(err)
	}
}
