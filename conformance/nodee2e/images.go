package nodee2e

// Image is an image the node e2e suite's NodeConformance specs run, by the
// name the specs give it, and how it is to be built here, offline, so that
// the local registry can serve it under that name (through hosts.toml
// mirrors, as for critest).
type Image struct {
	// Name is the reference the specs use, from k8s.io/kubernetes
	// v1.37.2's test/utils/image/manifest.go (Manifest is its entry there,
	// "" for a name written in a spec).
	Name     string
	Manifest string
	// Upstream is what the published image holds (its Dockerfile under
	// test/images/ in the kubernetes module).
	Upstream string
	// Build says how the image is made offline here (Build builds it; it
	// is not yet served to a run), and where it is a stand-in rather than
	// the real program, why.
	Build string
	// UsedBy names the spec files (test/e2e/common/... or test/e2e_node/...)
	// whose NodeConformance specs, or specs beside them, run the image.
	UsedBy string
}

// Images are the images the NodeConformance selection runs. They were found
// by reading every file of test/e2e and test/e2e_node (k8s.io/kubernetes
// v1.37.2) that defines a NodeConformance spec: the images they name
// through test/utils/image (imageutils.X, e2e_node's busyboxImage and
// agnhostImage, e2epod.NewAgnhostContainer, e2epod.GetDefaultTestImage =
// busybox on Linux) and literally, and the helpers those specs call
// (e2e_node's sample device plugin manifest). It is a superset: a file's
// other specs count too. The 614 specs of the selection are defined in 67
// files.
//
// The suite also pre-pulls e2e_node's NodePrePullImageList (image_list.go:
// cadvisor, etcd, perl, node-perf/*, node-problem-detector, the sample
// device plugin, ...) before any spec unless run with
// --prepull-images=false; none of those is run by a NodeConformance spec,
// so the run is to pass --prepull-images=false rather than build them.
var Images = []Image{
	{
		Name:     "registry.k8s.io/e2e-test-images/agnhost:2.66.1",
		Manifest: "Agnhost",
		Upstream: "alpine 3.21 with /agnhost (ENTRYPOINT, CMD pause), agnhost-2 a link to it, bind-tools, curl, netcat, iproute2, iperf, bash, socat, coredns 1.6.2, porter's localhost.crt/key, /uploads, user-defined-in-image (uid 1000) in group-defined-in-image (gid 50000), and /var/registry: registry.k8s.io/pause:3.10.2 as pause:testing for fake-registry-server",
		Build:    "the real program, agnhost 2.66.1, built by scripts/node-e2e-build.sh (programs/agnhost: `go build k8s.io/kubernetes/test/images/agnhost`, static, main.Version from its VERSION, as upstream's image-util.sh builds it); on busybox 1.37.0 (the shell and tools the specs exec: sh, nc, wget, ip); /etc/passwd and /etc/group with the image's user and group; alpine 3.21's /etc/os-release; porter's localhost.crt and localhost.key at / (the https probe and hook servers); /var/registry in fake-registry-server's layout with the pause image below as pause:testing. Debian's curl and bash with their libraries (the suite's node-to-pod checks exec curl, the probe specs' scripts run /bin/bash). Not carried yet: alpine's bind-tools, iperf, socat and coredns, none of which the selection is known to run",
		UsedBy:   "e2e/common/node (pods, runtime: fake-registry-server and image pulls, lifecycle_hook, container_probe, security_context, ephemeral_containers), e2e/common/storage (volumes: mounttest), e2e_node (pod_host_ips, pod_conditions, summary, swap)",
	},
	{
		Name:     "registry.k8s.io/e2e-test-images/kitten:1.8",
		Manifest: "Kitten",
		Upstream: "agnhost 2.66.1 with test/images/kitten/html's kitten.jpg and data.json at / (CMD test-webserver)",
		Build:    "agnhost 2.66.1's image above with the same two files (scripts/node-e2e-build.sh copies them from the kubernetes module); the specs mount it as an image volume and read data.json, etc/os-release (agnhost's carries alpine's, as upstream's base) and etc/passwd",
		UsedBy:   "e2e/common/node/image_volume.go, e2e_node/image_volume.go",
	},
	{
		Name:     "registry.k8s.io/e2e-test-images/agnhost:2.55",
		Manifest: "AgnhostPrev",
		Upstream: "agnhost 2.55, as above",
		Build:    "stand-in: the same v1.37.2 agnhost under 2.55's name, with a label naming the tag so that its ID differs; the one spec (pods.go, the Pod lifecycle) only needs a second, distinct agnhost to update a pod to",
		UsedBy:   "e2e/common/node/pods.go",
	},
	{
		Name:     "registry.k8s.io/e2e-test-images/busybox:1.37.0-2",
		Manifest: "BusyBox",
		Upstream: "busybox:1.37.0 (Docker Hub's, glibc)",
		Build:    "busybox 1.37.0 itself, glibc, busybox's default configuration (as Docker Hub's busybox:1.37.0-glibc), built by scripts/node-e2e-build.sh from Debian's source of it (trixie's orig tarball): bookworm's own busybox (1.35.0, Debian's configuration) lacks nmeter and top, which the specs run, and its ash drops environment variables whose names are not shell identifiers (data-1), which the ConfigMap and Secret env specs read back; the other images are built on it too",
		UsedBy:   "most specs: e2e/common/node, e2e/common/storage, e2e_node (security_context, mirror_pod, static_pod, deleted_pods, pod_ips, proc_mount, ...)",
	},
	{
		Name:     "registry.k8s.io/e2e-test-images/nginx:1.27.0-2",
		Manifest: "Nginx",
		Upstream: "nginx:1.27-alpine",
		Build:    "stand-in: critest's imagebin as nginx (answers HTTP on :80, nginx's process title, /var/run/nginx.pid), on busybox; this host has no nginx binary to copy, and Debian's nginx (installable) would need its libraries and configuration",
		UsedBy:   "e2e/common/node/pods.go, e2e_node/security_context_test.go (host PID: nginx's pid file read from another container), e2e_node/mirror_pod_test.go",
	},
	{
		Name:     "registry.k8s.io/e2e-test-images/nonewprivs:1.4",
		Manifest: "Nonewprivs",
		Upstream: "alpine 3.22 with /usr/local/bin/nnp set-user-ID root (CMD nnp): test/images/nonewprivs/nnp.go prints its effective uid",
		Build:    "the real program, built by scripts/node-e2e-build.sh (programs/nonewprivs, from k8s.io/kubernetes/test/images/nonewprivs), installed set-user-ID root at /usr/local/bin/nnp, on busybox",
		UsedBy:   "e2e/common/node/security_context.go (allowPrivilegeEscalation)",
	},
	{
		Name:     "registry.k8s.io/e2e-test-images/nonroot:1.5",
		Manifest: "NonRoot",
		Upstream: "Debian bookworm base with USER 1234",
		Build:    "busybox with USER 1234 (the specs run `id -u`)",
		UsedBy:   "e2e/common/node/security_context.go (runAsNonRoot)",
	},
	{
		Name:     "registry.k8s.io/e2e-test-images/ipc-utils:1.4",
		Manifest: "IpcUtils",
		Upstream: "alpine 3.22 with util-linux (ipcs, ipcmk, ipcrm)",
		Build:    "busybox plus the host's (Debian's) ipcs, ipcmk and ipcrm with their libraries (conformance/images.ProgramFiles), as critest's busybox gets ipcs",
		UsedBy:   "e2e_node/security_context_test.go (host IPC: `ipcs -m` in the container sees a segment made by ipcmk on the host)",
	},
	{
		Name:     "registry.k8s.io/e2e-test-images/glibc-dns-testing:2.1.1",
		Manifest: "GlibcDnsTesting",
		Upstream: "debian:bookworm-slim with dnsutils and coredns 1.5.0",
		Build:    "busybox plus the host's glibc `hostname` (/usr/bin/hostname) with its libraries and an nsswitch.conf (hosts: files dns): the specs run `hostname` and `hostname -f`, whose answer must come from glibc's resolver reading /etc/hosts as upstream's does; dig and coredns are not run by them",
		UsedBy:   "e2e/common/node/pod_hostnameoverride.go, e2e_node/pod_hostnamefqdn_test.go",
	},
	{
		Name:     "registry.k8s.io/pause:3.10.2",
		Manifest: "Pause",
		Upstream: "kubernetes' build/pause/linux/pause.c, static, ENTRYPOINT /pause, USER 65535:65535",
		Build:    "a real pause: husk's own (bin/husk-pause, C, static, as kubernetes' build/pause/linux/pause.c is built) as /pause, ENTRYPOINT /pause, USER 65535:65535; also laid out in agnhost's /var/registry as pause:testing",
		UsedBy:   "specs that run pause as a container: e2e/common/node (init_container, pods, lifecycle_hook, pod_admission), e2e_node (runtimeclass, mirror_pod, container_lifecycle, pods_container_manager, static_pod)",
	},
	{
		Name:     "registry.k8s.io/e2e-test-images/sample-device-plugin:1.8.0",
		Upstream: "test/images/sample-device-plugin on alpine, named by e2e_node's test/e2e/testing-manifests/sample-device-plugin/sample-device-plugin.yaml (manifest.go's SampleDevicePlugin still says 1.7)",
		Build:    "the real program, built by scripts/node-e2e-build.sh (programs/sample-device-plugin), on busybox; its one NodeConformance spec (device_plugin_test.go, a restartable init container) is also Serial and Disruptive",
		UsedBy:   "e2e_node/device_plugin_test.go",
	},
	{
		Name:     "invalid.registry.k8s.io/invalid/alpine:3.1",
		Manifest: "InvalidRegistryImage",
		Upstream: "none: the name must not resolve",
		Build:    "none: no mirror is configured for invalid.registry.k8s.io, so the pull fails as the specs expect",
		UsedBy:   "e2e/common/node/runtime.go, e2e_node/container_lifecycle_test.go, e2e_node/device_plugin_failures_pod_status_test.go",
	},
}
