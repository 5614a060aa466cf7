package cri

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/huskrt/husk/internal/cgroup"
	"github.com/huskrt/husk/internal/errdefs"
)

func validRequest() *runtime.RunPodSandboxRequest {
	return &runtime.RunPodSandboxRequest{Config: &runtime.PodSandboxConfig{
		Metadata:     &runtime.PodSandboxMetadata{Name: "web", Namespace: "default", Uid: "1234", Attempt: 2},
		Hostname:     "web-0",
		LogDirectory: "/var/log/pods/default_web_1234",
		DnsConfig:    &runtime.DNSConfig{Servers: []string{"10.96.0.10", "fe80::1%eth0"}, Searches: []string{"svc.cluster.local"}, Options: []string{"ndots:5"}},
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
	if err := validateRunPodSandbox(validRequest(), cgroup.Cgroupfs, Handlers); err != nil {
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
		{"user namespace with host PID", func(r *runtime.RunPodSandboxRequest) {
			m := []*runtime.IDMapping{{HostId: 100000, Length: 65536}}
			r.Config.Linux.SecurityContext.NamespaceOptions.UsernsOptions = &runtime.UserNamespace{Mode: runtime.NamespaceMode_POD, Uids: m, Gids: m}
			r.Config.Linux.SecurityContext.NamespaceOptions.Pid = runtime.NamespaceMode_NODE
		}, "userns_options"},
		{"user namespace with host IPC", func(r *runtime.RunPodSandboxRequest) {
			m := []*runtime.IDMapping{{HostId: 100000, Length: 65536}}
			r.Config.Linux.SecurityContext.NamespaceOptions.UsernsOptions = &runtime.UserNamespace{Mode: runtime.NamespaceMode_POD, Uids: m, Gids: m}
			r.Config.Linux.SecurityContext.NamespaceOptions.Ipc = runtime.NamespaceMode_NODE
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
		{"1 MB name", func(r *runtime.RunPodSandboxRequest) { r.Config.Metadata.Name = strings.Repeat("a", 1<<20) }, "config.metadata.name: 1048576 bytes; at most 253"},
		{"254-byte name", func(r *runtime.RunPodSandboxRequest) { r.Config.Metadata.Name = strings.Repeat("a", 254) }, "config.metadata.name"},
		{"1 MB namespace", func(r *runtime.RunPodSandboxRequest) { r.Config.Metadata.Namespace = strings.Repeat("n", 1<<20) }, "config.metadata.namespace"},
		{"1 MB uid", func(r *runtime.RunPodSandboxRequest) { r.Config.Metadata.Uid = strings.Repeat("u", 1<<20) }, "config.metadata.uid"},
		{"name with a newline", func(r *runtime.RunPodSandboxRequest) { r.Config.Metadata.Name = "a\nb" }, "config.metadata.name"},
		{"hostname with a control character", func(r *runtime.RunPodSandboxRequest) { r.Config.Hostname = "a\x01b" }, "config.hostname"},
		{"log directory climbs", func(r *runtime.RunPodSandboxRequest) { r.Config.LogDirectory = "/var/log/pods/../../../etc" }, "config.log_directory"},
		{"log directory ends in ..", func(r *runtime.RunPodSandboxRequest) { r.Config.LogDirectory = "/var/log/.." }, "config.log_directory"},
		{"log directory with NUL", func(r *runtime.RunPodSandboxRequest) { r.Config.LogDirectory = "/var/log/x\x00" }, "config.log_directory"},
		{"log directory too long", func(r *runtime.RunPodSandboxRequest) { r.Config.LogDirectory = "/" + strings.Repeat("d", 4096) }, "config.log_directory"},
		{"label key too long", func(r *runtime.RunPodSandboxRequest) {
			r.Config.Labels = map[string]string{strings.Repeat("k", 318): "v"}
		}, "config.labels"},
		{"empty label key", func(r *runtime.RunPodSandboxRequest) { r.Config.Labels = map[string]string{"": "v"} }, "config.labels"},
		{"label value too long", func(r *runtime.RunPodSandboxRequest) {
			r.Config.Labels = map[string]string{"app": strings.Repeat("v", 254)}
		}, "config.labels"},
		{"huge label map", func(r *runtime.RunPodSandboxRequest) { r.Config.Labels = bigMap(2000, 200) }, "config.labels: 2000 labels"},
		{"annotation key too long", func(r *runtime.RunPodSandboxRequest) {
			r.Config.Annotations = map[string]string{strings.Repeat("k", 318): "v"}
		}, "config.annotations"},
		{"huge annotation map", func(r *runtime.RunPodSandboxRequest) { r.Config.Annotations = bigMap(1100, 1000) }, "config.annotations: 1100 annotations"},
		{"IPv6 DNS server with a newline in its zone", func(r *runtime.RunPodSandboxRequest) {
			r.Config.DnsConfig.Servers = []string{"fe80::1%eth0\nnameserver 6.6.6.6"}
		}, "config.dns_config.servers[0]"},
		{"IPv6 DNS server with a slash in its zone", func(r *runtime.RunPodSandboxRequest) { r.Config.DnsConfig.Servers = []string{"fe80::1%a/b"} }, "config.dns_config.servers[0]"},
		{"IPv6 DNS server with a long zone", func(r *runtime.RunPodSandboxRequest) {
			r.Config.DnsConfig.Servers = []string{"fe80::1%" + strings.Repeat("e", 16)}
		}, "config.dns_config.servers[0]"},
		{"IPv6 DNS server with a space in its zone", func(r *runtime.RunPodSandboxRequest) { r.Config.DnsConfig.Servers = []string{"fe80::1%a b"} }, "config.dns_config.servers[0]"},
		{"too many DNS servers", func(r *runtime.RunPodSandboxRequest) {
			r.Config.DnsConfig.Servers = slices.Repeat([]string{"10.0.0.1"}, 7)
		}, "config.dns_config.servers"},
		{"too many DNS searches", func(r *runtime.RunPodSandboxRequest) {
			r.Config.DnsConfig.Searches = slices.Repeat([]string{"a.b"}, 65)
		}, "config.dns_config.searches"},
		{"DNS search too long", func(r *runtime.RunPodSandboxRequest) {
			r.Config.DnsConfig.Searches = []string{strings.Repeat("a", 254)}
		}, "config.dns_config.searches[0]"},
		{"DNS searches too long together", func(r *runtime.RunPodSandboxRequest) {
			r.Config.DnsConfig.Searches = slices.Repeat([]string{strings.Repeat("a", 200)}, 21)
		}, "config.dns_config.searches: 4221 characters"},
		{"DNS search with a tab", func(r *runtime.RunPodSandboxRequest) { r.Config.DnsConfig.Searches = []string{"a\tb"} }, "config.dns_config.searches[0]"},
		{"DNS option with a control character", func(r *runtime.RunPodSandboxRequest) { r.Config.DnsConfig.Options = []string{"ndots:5\x0b"} }, "config.dns_config.options[0]"},
		{"too many DNS options", func(r *runtime.RunPodSandboxRequest) {
			r.Config.DnsConfig.Options = slices.Repeat([]string{"rotate"}, 65)
		}, "config.dns_config.options"},
		{"sysctl name too long", func(r *runtime.RunPodSandboxRequest) {
			r.Config.Linux.Sysctls = map[string]string{"net." + strings.Repeat("a", 250): "1"}
		}, "config.linux.sysctls"},
		{"sysctls too large together", func(r *runtime.RunPodSandboxRequest) {
			r.Config.Linux.Sysctls = map[string]string{}
			for i := range 100 {
				r.Config.Linux.Sysctls[fmt.Sprintf("net.ipv4.conf.eth%d.rp_filter", i)] = strings.Repeat("1", 4000)
			}
		}, "config.linux.sysctls: 100 entries"},
		{"sysctl value too long", func(r *runtime.RunPodSandboxRequest) {
			r.Config.Linux.Sysctls = map[string]string{"net.core.somaxconn": strings.Repeat("1", 4097)}
		}, "config.linux.sysctls"},
		{"too many supplemental groups", func(r *runtime.RunPodSandboxRequest) {
			r.Config.Linux.SecurityContext.SupplementalGroups = make([]int64, 65537)
		}, "supplemental_groups"},
		{"long SELinux type", func(r *runtime.RunPodSandboxRequest) {
			r.Config.Linux.SecurityContext.SelinuxOptions = &runtime.SELinuxOption{Type: strings.Repeat("t", 4097)}
		}, "config.linux.security_context.selinux_options.type: 4097 bytes; at most 4096"},
		{"long seccomp profile", func(r *runtime.RunPodSandboxRequest) {
			r.Config.Linux.SecurityContext.Seccomp = &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_Localhost, LocalhostRef: "/" + strings.Repeat("p", 4096)}
		}, "config.linux.security_context.seccomp.localhost_ref"},
		{"long cgroup parent", func(r *runtime.RunPodSandboxRequest) { r.Config.Linux.CgroupParent = "/" + strings.Repeat("c", 4096) }, "config.linux.cgroup_parent"},
		{"long Windows field", func(r *runtime.RunPodSandboxRequest) {
			r.Config.Windows = &runtime.WindowsPodSandboxConfig{SecurityContext: &runtime.WindowsSandboxSecurityContext{RunAsUsername: strings.Repeat("w", 1<<20)}}
		}, "config.windows.security_context.run_as_username"},
		{"long pod-level resource", func(r *runtime.RunPodSandboxRequest) {
			r.Config.Linux.Resources = &runtime.LinuxContainerResources{CpusetCpus: strings.Repeat("1", 5000)}
		}, "config.linux.resources.cpuset_cpus"},
		{"9 MB of unknown fields", func(r *runtime.RunPodSandboxRequest) {
			r.Config.ProtoReflect().SetUnknown(protowire.AppendBytes(protowire.AppendTag(nil, 999, protowire.BytesType), make([]byte, 9<<20)))
		}, "bytes encoded; at most 8388608"},
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
			err := validateRunPodSandbox(r, cgroup.Cgroupfs, Handlers)
			if errdefs.Code(err) != codes.InvalidArgument {
				t.Fatalf("code %v (%v), want InvalidArgument", errdefs.Code(err), err)
			}
			if !strings.Contains(err.Error(), c.field) {
				t.Errorf("message %q does not name %q", err, c.field)
			}
		})
	}
}

// bigMap is a map of n entries whose values are size bytes long.
func bigMap(n, size int) map[string]string {
	m := make(map[string]string, n)
	for i := range n {
		m[fmt.Sprintf("key-%d", i)] = strings.Repeat("v", size)
	}
	return m
}

// What kubelet and critest send must pass: their longest names, the
// labels and annotations kubelet makes, Kubernetes' largest DNS config.
func TestValidateRunPodSandboxAcceptsKubelet(t *testing.T) {
	cases := map[string]func(r *runtime.RunPodSandboxRequest){
		"critest's names": func(r *runtime.RunPodSandboxRequest) {
			r.Config.Metadata = &runtime.PodSandboxMetadata{
				Name:      "PodSandbox-for-creating-pod-and-container-performance-test-" + "0b5c2f7e-3a8d-4e0f-9b1c-2d6e8f0a4c7b",
				Uid:       "cri-test-uid" + "0b5c2f7e-3a8d-4e0f-9b1c-2d6e8f0a4c7b",
				Namespace: "cri-test-namespace" + "0b5c2f7e-3a8d-4e0f-9b1c-2d6e8f0a4c7b", Attempt: 2,
			}
		},
		"longest Kubernetes names": func(r *runtime.RunPodSandboxRequest) {
			r.Config.Metadata.Name = strings.Repeat("n", 253)
			r.Config.Metadata.Namespace = strings.Repeat("s", 63)
			r.Config.Labels = map[string]string{
				"io.kubernetes.pod.name":                                 strings.Repeat("n", 253),
				strings.Repeat("p", 253) + "/" + strings.Repeat("k", 63): strings.Repeat("v", 63),
			}
		},
		"256 KiB of annotations": func(r *runtime.RunPodSandboxRequest) {
			r.Config.Annotations = map[string]string{"a": strings.Repeat("v", 256<<10-1)}
		},
		"Kubernetes' largest DNS config": func(r *runtime.RunPodSandboxRequest) {
			r.Config.DnsConfig = &runtime.DNSConfig{
				Servers:  []string{"10.96.0.10", "2001:db8::53", "fe80::1%25"},
				Searches: slices.Repeat([]string{strings.Repeat("s", 63)}, 32),
				Options:  []string{"ndots:5", "edns0", "timeout:2"},
			}
		},
	}
	for name, mod := range cases {
		t.Run(name, func(t *testing.T) {
			r := validRequest()
			mod(r)
			if err := validateRunPodSandbox(r, cgroup.Cgroupfs, Handlers); err != nil {
				t.Fatal(err)
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
		if err := validateRunPodSandbox(r, cgroup.Cgroupfs, Handlers); err != nil && errdefs.Code(err) != codes.InvalidArgument {
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

// A handler named in the config is served; it is refused without.
func TestValidateConfiguredHandler(t *testing.T) {
	r := validRequest()
	r.RuntimeHandler = "test-handler"
	if err := validateRunPodSandbox(r, cgroup.Cgroupfs, append(slices.Clone(Handlers), "test-handler")); err != nil {
		t.Errorf("configured handler refused: %v", err)
	}
	if err := validateRunPodSandbox(r, cgroup.Cgroupfs, Handlers); errdefs.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), `"test-handler"`) {
		t.Errorf("unconfigured handler: %v, want InvalidArgument naming it", err)
	}
}
