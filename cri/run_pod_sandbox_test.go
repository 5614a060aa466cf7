package cri

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/huskrt/husk/internal/errdefs"
)

func validRequest() *runtime.RunPodSandboxRequest {
	return &runtime.RunPodSandboxRequest{Config: &runtime.PodSandboxConfig{
		Metadata:     &runtime.PodSandboxMetadata{Name: "web", Namespace: "default", Uid: "1234", Attempt: 2},
		Hostname:     "web-0",
		LogDirectory: "/var/log/pods/default_web_1234",
		DnsConfig:    &runtime.DNSConfig{Servers: []string{"10.96.0.10"}, Searches: []string{"svc.cluster.local"}, Options: []string{"ndots:5"}},
		PortMappings: []*runtime.PortMapping{{ContainerPort: 80, HostPort: 8080, HostIp: "127.0.0.1"}},
		Linux: &runtime.LinuxPodSandboxConfig{
			CgroupParent: "/kubepods/besteffort/pod1234",
			Sysctls:      map[string]string{"net.ipv4.ip_unprivileged_port_start": "0", "kernel.shm_rmid_forced": "1", "fs.mqueue.msg_max": "20", "net/ipv4/conf/eth0.100/rp_filter": "1"},
			SecurityContext: &runtime.LinuxSandboxSecurityContext{
				NamespaceOptions: &runtime.NamespaceOption{Pid: runtime.NamespaceMode_CONTAINER},
				RunAsUser:        &runtime.Int64Value{Value: 1000},
			},
		},
	}}
}

func TestValidateRunPodSandbox(t *testing.T) {
	if err := validateRunPodSandbox(validRequest()); err != nil {
		t.Fatalf("valid request refused: %v", err)
	}
	cases := []struct {
		name  string
		mod   func(r *runtime.RunPodSandboxRequest)
		field string // the message must name it
	}{
		{"no config", func(r *runtime.RunPodSandboxRequest) { r.Config = nil }, "config"},
		{"no metadata", func(r *runtime.RunPodSandboxRequest) { r.Config.Metadata = nil }, "config.metadata"},
		{"empty name", func(r *runtime.RunPodSandboxRequest) { r.Config.Metadata.Name = "" }, "config.metadata.name"},
		{"empty namespace", func(r *runtime.RunPodSandboxRequest) { r.Config.Metadata.Namespace = "" }, "config.metadata.namespace"},
		{"empty uid", func(r *runtime.RunPodSandboxRequest) { r.Config.Metadata.Uid = "" }, "config.metadata.uid"},
		{"slash in name", func(r *runtime.RunPodSandboxRequest) { r.Config.Metadata.Name = "a/b" }, "config.metadata.name"},
		{"unknown handler", func(r *runtime.RunPodSandboxRequest) { r.RuntimeHandler = "runsc" }, "runtime_handler"},
		{"long hostname", func(r *runtime.RunPodSandboxRequest) { r.Config.Hostname = strings.Repeat("a", 65) }, "config.hostname"},
		{"hostname with space", func(r *runtime.RunPodSandboxRequest) { r.Config.Hostname = "a b" }, "config.hostname"},
		{"relative log directory", func(r *runtime.RunPodSandboxRequest) { r.Config.LogDirectory = "logs" }, "config.log_directory"},
		{"DNS server not an IP", func(r *runtime.RunPodSandboxRequest) { r.Config.DnsConfig.Servers = []string{"dns"} }, "config.dns_config.servers"},
		{"DNS search with newline", func(r *runtime.RunPodSandboxRequest) { r.Config.DnsConfig.Searches = []string{"a\nnameserver 1.1.1.1"} }, "config.dns_config.searches"},
		{"DNS option empty", func(r *runtime.RunPodSandboxRequest) { r.Config.DnsConfig.Options = []string{""} }, "config.dns_config.options"},
		{"port out of range", func(r *runtime.RunPodSandboxRequest) { r.Config.PortMappings[0].HostPort = 70000 }, "config.port_mappings"},
		{"host IP not an IP", func(r *runtime.RunPodSandboxRequest) { r.Config.PortMappings[0].HostIp = "localhost" }, "config.port_mappings"},
		{"cgroup parent escapes", func(r *runtime.RunPodSandboxRequest) { r.Config.Linux.CgroupParent = "/kubepods/../.." }, "config.linux.cgroup_parent"},
		{"network CONTAINER", func(r *runtime.RunPodSandboxRequest) {
			r.Config.Linux.SecurityContext.NamespaceOptions.Network = runtime.NamespaceMode_CONTAINER
		}, "namespace_options.network"},
		{"network TARGET", func(r *runtime.RunPodSandboxRequest) {
			r.Config.Linux.SecurityContext.NamespaceOptions.Network = runtime.NamespaceMode_TARGET
		}, "namespace_options.network"},
		{"ipc CONTAINER", func(r *runtime.RunPodSandboxRequest) {
			r.Config.Linux.SecurityContext.NamespaceOptions.Ipc = runtime.NamespaceMode_CONTAINER
		}, "namespace_options.ipc"},
		{"pid unknown", func(r *runtime.RunPodSandboxRequest) { r.Config.Linux.SecurityContext.NamespaceOptions.Pid = 7 }, "namespace_options.pid"},
		{"user namespace without mappings", func(r *runtime.RunPodSandboxRequest) {
			r.Config.Linux.SecurityContext.NamespaceOptions.UsernsOptions = &runtime.UserNamespace{Mode: runtime.NamespaceMode_POD}
		}, "userns_options"},
		{"user namespace, two mappings", func(r *runtime.RunPodSandboxRequest) {
			m := []*runtime.IDMapping{{HostId: 1000, Length: 1000}, {ContainerId: 1000, HostId: 5000, Length: 10}}
			r.Config.Linux.SecurityContext.NamespaceOptions.UsernsOptions = &runtime.UserNamespace{Mode: runtime.NamespaceMode_POD, Uids: m, Gids: m}
		}, "userns_options"},
		{"user namespace, 0 unmapped", func(r *runtime.RunPodSandboxRequest) {
			m := []*runtime.IDMapping{{ContainerId: 1, HostId: 1000, Length: 1000}}
			r.Config.Linux.SecurityContext.NamespaceOptions.UsernsOptions = &runtime.UserNamespace{Mode: runtime.NamespaceMode_POD, Uids: m, Gids: m}
		}, "userns_options"},
		{"user namespace CONTAINER", func(r *runtime.RunPodSandboxRequest) {
			r.Config.Linux.SecurityContext.NamespaceOptions.UsernsOptions = &runtime.UserNamespace{Mode: runtime.NamespaceMode_CONTAINER}
		}, "userns_options.mode"},
		{"user namespace with host network", func(r *runtime.RunPodSandboxRequest) {
			m := []*runtime.IDMapping{{HostId: 100000, Length: 65536}}
			r.Config.Linux.SecurityContext.NamespaceOptions.UsernsOptions = &runtime.UserNamespace{Mode: runtime.NamespaceMode_POD, Uids: m, Gids: m}
			r.Config.Linux.SecurityContext.NamespaceOptions.Network = runtime.NamespaceMode_NODE
		}, "userns_options"},
		{"negative uid", func(r *runtime.RunPodSandboxRequest) {
			r.Config.Linux.SecurityContext.RunAsUser = &runtime.Int64Value{Value: -1}
		}, "run_as_user"},
		{"negative gid", func(r *runtime.RunPodSandboxRequest) {
			r.Config.Linux.SecurityContext.RunAsGroup = &runtime.Int64Value{Value: -5}
		}, "run_as_group"},
		{"negative supplemental group", func(r *runtime.RunPodSandboxRequest) {
			r.Config.Linux.SecurityContext.SupplementalGroups = []int64{-1}
		}, "supplemental_groups"},
		{"node-wide sysctl", func(r *runtime.RunPodSandboxRequest) {
			r.Config.Linux.Sysctls = map[string]string{"vm.swappiness": "1"}
		}, "config.linux.sysctls"},
		{"sysctl path traversal", func(r *runtime.RunPodSandboxRequest) {
			r.Config.Linux.Sysctls = map[string]string{"net/../../kernel/panic": "1"}
		}, "config.linux.sysctls"},
		{"sysctl value with newline", func(r *runtime.RunPodSandboxRequest) {
			r.Config.Linux.Sysctls = map[string]string{"net.ipv4.ip_forward": "1\n0"}
		}, "config.linux.sysctls"},
		{"net sysctl, host network", func(r *runtime.RunPodSandboxRequest) {
			r.Config.Linux.SecurityContext.NamespaceOptions.Network = runtime.NamespaceMode_NODE
			r.Config.Linux.Sysctls = map[string]string{"net.core.somaxconn": "1024"}
		}, "config.linux.sysctls"},
		{"ipc sysctl, host IPC", func(r *runtime.RunPodSandboxRequest) {
			r.Config.Linux.SecurityContext.NamespaceOptions.Ipc = runtime.NamespaceMode_NODE
			r.Config.Linux.Sysctls = map[string]string{"kernel.shmmax": "1024"}
		}, "config.linux.sysctls"},
		{"uts sysctl, host network", func(r *runtime.RunPodSandboxRequest) {
			r.Config.Linux.SecurityContext.NamespaceOptions.Network = runtime.NamespaceMode_NODE
			r.Config.Linux.Sysctls = map[string]string{"kernel.domainname": "x"}
		}, "config.linux.sysctls"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := validRequest()
			c.mod(r)
			err := validateRunPodSandbox(r)
			if errdefs.Code(err) != codes.InvalidArgument {
				t.Fatalf("code %v (%v), want InvalidArgument", errdefs.Code(err), err)
			}
			if !strings.Contains(err.Error(), c.field) {
				t.Errorf("message %q does not name %q", err, c.field)
			}
		})
	}
}

// FuzzValidateRunPodSandbox: no request, however malformed, makes the
// validator panic; it accepts or answers InvalidArgument.
func FuzzValidateRunPodSandbox(f *testing.F) {
	seed, _ := proto.Marshal(validRequest())
	f.Add(seed)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		r := &runtime.RunPodSandboxRequest{}
		if proto.Unmarshal(b, r) != nil {
			return
		}
		if err := validateRunPodSandbox(r); err != nil && errdefs.Code(err) != codes.InvalidArgument {
			t.Fatalf("code %v for %v", errdefs.Code(err), err)
		}
	})
}

func TestValidatePodCIDR(t *testing.T) {
	for cidr, ok := range map[string]bool{
		"": true, "10.0.0.0/16": true, "10.0.0.0/16,fd00::/64": true,
		"10.0.0.0": false, "10.0.0.0/16,fd00::/64,1.0.0.0/8": false, "x/8": false,
	} {
		if err := validatePodCIDR(cidr); (err == nil) != ok {
			t.Errorf("validatePodCIDR(%q) = %v", cidr, err)
		}
	}
}
