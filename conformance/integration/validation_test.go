package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// hugeMap is a map of n entries of size-byte values.
func hugeMap(n, size int) map[string]string {
	m := make(map[string]string, n)
	for i := range n {
		m[fmt.Sprintf("k%d", i)] = strings.Repeat("v", size)
	}
	return m
}

// refused checks that err is InvalidArgument and names field.
func refused(t *testing.T, call string, err error, field string) {
	t.Helper()
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), field) {
		msg := fmt.Sprint(err)
		if len(msg) > 300 {
			msg = msg[:300] + "..."
		}
		t.Errorf("%s: %s; want InvalidArgument naming %q", call, msg, field)
	}
}

// Every hostile request is refused with InvalidArgument naming the field,
// before anything is created: no pod or container is listed after it, no
// directory is left, and an update changes nothing.
func TestHostileRequestsAreRefused(t *testing.T) {
	dir := t.TempDir()
	profiles := filepath.Join(dir, "seccomp")
	if err := os.MkdirAll(profiles, 0o755); err != nil {
		t.Fatal(err)
	}
	const allow = `{"defaultAction":"SCMP_ACT_ALLOW"}`
	// A valid profile outside the root, reachable only by climbing; and
	// one of 2 MiB (JSON with trailing spaces).
	for p, body := range map[string]string{
		filepath.Join(dir, "outside.json"):  allow,
		filepath.Join(profiles, "big.json"): allow + strings.Repeat(" ", 2<<20),
	} {
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	h, _ := ctrHuskd(t, fmt.Sprintf("[runtime]\nseccomp_profile_root = %q\n", profiles))
	ctx := context.Background()
	pod, podCfg := podWithLogs(t, h, "hostile", nil)
	target := createCtr(t, h, pod, podCfg, ctrConfig("target", "sleep", "1000"))
	before := ctrStatus(t, h, target).GetResources().GetLinux()

	nothingCreated := func(t *testing.T) {
		t.Helper()
		if pods, _ := h.Runtime.ListPodSandbox(ctx, nil); len(pods) != 1 {
			t.Errorf("%d pods listed, want 1", len(pods))
		}
		if ctrs, _ := h.Runtime.ListContainers(ctx, nil); len(ctrs) != 1 {
			t.Errorf("%d containers listed, want 1", len(ctrs))
		}
		for _, d := range []string{filepath.Join(h.Root, "pods"), filepath.Join(h.State, "pods"), filepath.Join(h.Root, "containers")} {
			if n := len(mustReadDir(t, d)); n != 1 {
				t.Errorf("%d entries in %s, want 1", n, d)
			}
		}
	}

	podCases := []struct {
		name  string
		mod   func(*runtime.PodSandboxConfig)
		field string
	}{
		{"1 MB pod name", func(c *runtime.PodSandboxConfig) { c.Metadata.Name = strings.Repeat("p", 1<<20) }, "config.metadata.name"},
		{"huge label map", func(c *runtime.PodSandboxConfig) { c.Labels = hugeMap(10000, 200) }, "config.labels"},
		{"huge annotation map", func(c *runtime.PodSandboxConfig) { c.Annotations = hugeMap(4000, 1000) }, "config.annotations"},
		{"IPv6 DNS server whose zone holds a newline", func(c *runtime.PodSandboxConfig) {
			c.DnsConfig = &runtime.DNSConfig{Servers: []string{"fe80::1%eth0\nnameserver 6.6.6.6"}}
		}, "config.dns_config.servers[0]"},
		{"log directory with ..", func(c *runtime.PodSandboxConfig) { c.LogDirectory = dir + "/../../etc" }, "config.log_directory"},
	}
	for i, c := range podCases {
		t.Run(c.name, func(t *testing.T) {
			cfg := proto.Clone(podCfg).(*runtime.PodSandboxConfig)
			cfg.Metadata.Name = fmt.Sprintf("hostile-%d", i)
			c.mod(cfg)
			cctx, cancel := context.WithTimeout(ctx, time.Minute)
			defer cancel()
			resp, err := h.Raw.RunPodSandbox(cctx, &runtime.RunPodSandboxRequest{Config: cfg})
			refused(t, "RunPodSandbox", err, c.field)
			if err == nil {
				b, _ := os.ReadFile(filepath.Join(h.Root, "pods", resp.PodSandboxId, "resolv.conf"))
				t.Logf("the pod was created; its resolv.conf:\n%s", b)
				if _, err := h.Raw.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: resp.PodSandboxId}); err != nil {
					t.Error(err)
				}
			}
			nothingCreated(t)
		})
	}

	const fr = "config.linux.resources."
	withResources := func(r *runtime.LinuxContainerResources) func(*runtime.ContainerConfig) {
		return func(c *runtime.ContainerConfig) { c.Linux.Resources = r }
	}
	seccomp := func(ref string) func(*runtime.ContainerConfig) {
		return func(c *runtime.ContainerConfig) {
			c.Linux.SecurityContext.Seccomp = &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_Localhost, LocalhostRef: ref}
		}
	}
	const seccompField = "config.linux.security_context.seccomp.localhost_ref"
	ctrCases := []struct {
		name  string
		mod   func(*runtime.ContainerConfig)
		field string
	}{
		{"1 MB container name", func(c *runtime.ContainerConfig) { c.Metadata.Name = strings.Repeat("c", 1<<20) }, "config.metadata.name"},
		{"huge label map", func(c *runtime.ContainerConfig) { c.Labels = hugeMap(10000, 200) }, "config.labels"},
		{"huge annotation map", func(c *runtime.ContainerConfig) { c.Annotations = hugeMap(4000, 1000) }, "config.annotations"},
		{"seccomp profile climbing to /etc/shadow", seccomp(strings.Repeat("../", 12) + "etc/shadow"), seccompField},
		{"seccomp profile climbing out of the root", seccomp("../outside.json"), seccompField},
		{"absolute seccomp profile climbing out of the root", seccomp(profiles + "/../outside.json"), seccompField},
		{"2 MiB seccomp profile", seccomp("big.json"), seccompField},
		{"log path with ..", func(c *runtime.ContainerConfig) { c.LogPath = "../../hostile.log" }, "config.log_path"},
		{"container path with ..", func(c *runtime.ContainerConfig) {
			c.Mounts = []*runtime.Mount{{ContainerPath: "/data/../../etc", HostPath: dir}}
		}, "config.mounts[0].container_path"},
		{"CPU period of 100 µs", withResources(&runtime.LinuxContainerResources{CpuPeriod: 100}), fr + "cpu_period"},
		{"CPU period of 2 s", withResources(&runtime.LinuxContainerResources{CpuPeriod: 2000000}), fr + "cpu_period"},
		{"CPU quota of 500 µs", withResources(&runtime.LinuxContainerResources{CpuQuota: 500}), fr + "cpu_quota"},
		{"CPU quota of 2^50 µs", withResources(&runtime.LinuxContainerResources{CpuQuota: 1 << 50}), fr + "cpu_quota"},
		{"CPU shares of 1", withResources(&runtime.LinuxContainerResources{CpuShares: 1}), fr + "cpu_shares"},
		{"CPU shares of 300000", withResources(&runtime.LinuxContainerResources{CpuShares: 300000}), fr + "cpu_shares"},
		{"memory limit of 4 KiB", withResources(&runtime.LinuxContainerResources{MemoryLimitInBytes: 4096}), fr + "memory_limit_in_bytes"},
		{"swap limit without memory limit", withResources(&runtime.LinuxContainerResources{MemorySwapLimitInBytes: 32 << 20}), fr + "memory_swap_limit_in_bytes"},
		{"swap limit below memory limit", withResources(&runtime.LinuxContainerResources{MemoryLimitInBytes: 64 << 20, MemorySwapLimitInBytes: 32 << 20}), fr + "memory_swap_limit_in_bytes"},
		{"CPU the node lacks", withResources(&runtime.LinuxContainerResources{CpusetCpus: "4095"}), fr + "cpuset_cpus"},
		{"cpuset that is no list", withResources(&runtime.LinuxContainerResources{CpusetCpus: "a-b"}), fr + "cpuset_cpus"},
		{"memory node the node lacks", withResources(&runtime.LinuxContainerResources{CpusetMems: "5"}), fr + "cpuset_mems"},
		{"huge page size the node lacks", withResources(&runtime.LinuxContainerResources{
			HugepageLimits: []*runtime.HugepageLimit{{PageSize: "16GB", Limit: 16 << 30}},
		}), fr + "hugepage_limits[0].page_size"},
		{"OOM score 1001", withResources(&runtime.LinuxContainerResources{OomScoreAdj: 1001}), fr + "oom_score_adj"},
		{"OOM score -1001", withResources(&runtime.LinuxContainerResources{OomScoreAdj: -1001}), fr + "oom_score_adj"},
	}
	for i, c := range ctrCases {
		t.Run(c.name, func(t *testing.T) {
			cfg := ctrConfig(fmt.Sprintf("hostile-%d", i), "true")
			c.mod(cfg)
			cctx, cancel := context.WithTimeout(ctx, time.Minute)
			defer cancel()
			resp, err := h.Raw.CreateContainer(cctx, &runtime.CreateContainerRequest{PodSandboxId: pod, Config: cfg, SandboxConfig: podCfg})
			refused(t, "CreateContainer", err, c.field)
			if strings.Contains(fmt.Sprint(err), "invalid character") {
				t.Errorf("the message quotes the file it read: %v", err)
			}
			if err == nil {
				if err := h.Runtime.RemoveContainer(ctx, resp.ContainerId); err != nil {
					t.Error(err)
				}
			}
			nothingCreated(t)
		})
	}

	const fu = "linux."
	updCases := []struct {
		name  string
		res   *runtime.LinuxContainerResources
		field string
	}{
		{"CPU period of 100 µs", &runtime.LinuxContainerResources{CpuPeriod: 100}, fu + "cpu_period"},
		{"CPU period of 2 s", &runtime.LinuxContainerResources{CpuPeriod: 2000000}, fu + "cpu_period"},
		{"CPU quota of 500 µs", &runtime.LinuxContainerResources{CpuQuota: 500}, fu + "cpu_quota"},
		{"CPU shares of 1", &runtime.LinuxContainerResources{CpuShares: 1}, fu + "cpu_shares"},
		{"memory limit of 1 byte", &runtime.LinuxContainerResources{MemoryLimitInBytes: 1}, fu + "memory_limit_in_bytes"},
		{"CPU the node lacks", &runtime.LinuxContainerResources{CpusetCpus: "4095"}, fu + "cpuset_cpus"},
		{"huge page size the node lacks", &runtime.LinuxContainerResources{HugepageLimits: []*runtime.HugepageLimit{{PageSize: "16GB"}}}, fu + "hugepage_limits[0].page_size"},
		{"OOM score 1001", &runtime.LinuxContainerResources{OomScoreAdj: 1001}, fu + "oom_score_adj"},
	}
	for _, c := range updCases {
		t.Run("update "+c.name, func(t *testing.T) {
			_, err := h.Raw.UpdateContainerResources(ctx, &runtime.UpdateContainerResourcesRequest{ContainerId: target, Linux: c.res})
			refused(t, "UpdateContainerResources", err, c.field)
			if after := ctrStatus(t, h, target).GetResources().GetLinux(); !proto.Equal(after, before) {
				t.Errorf("resources changed from %v to %v", before, after)
			}
		})
	}
}
