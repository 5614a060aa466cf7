package sandbox

import (
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The pod's files, under <root>/pods/<id>/. App containers bind-mount them.
const (
	hostnameFile = "hostname"
	resolvFile   = "resolv.conf"
	hostsFile    = "hosts"
	recordFile   = "sandbox.json"
)

// resolvConf renders a pod's resolv.conf from its DNSConfig. A nil config
// means the host's resolv.conf, which the caller copies instead.
func resolvConf(dns *runtime.DNSConfig) []byte {
	var b strings.Builder
	b.WriteString("# written by husk for this pod\n")
	if len(dns.GetSearches()) > 0 {
		b.WriteString("search " + strings.Join(dns.GetSearches(), " ") + "\n")
	}
	for _, s := range dns.GetServers() {
		b.WriteString("nameserver " + s + "\n")
	}
	if len(dns.GetOptions()) > 0 {
		b.WriteString("options " + strings.Join(dns.GetOptions(), " ") + "\n")
	}
	return []byte(b.String())
}

// defaultHosts is the /etc/hosts of a pod on its own network. kubelet
// usually mounts its own over it; this one is for pods it does not manage.
func defaultHosts(hostname string) []byte {
	s := "127.0.0.1\tlocalhost\n" +
		"::1\tlocalhost ip6-localhost ip6-loopback\n" +
		"fe00::0\tip6-localnet\n" +
		"fe00::0\tip6-mcastprefix\n" +
		"fe00::1\tip6-allnodes\n" +
		"fe00::2\tip6-allrouters\n"
	if hostname != "" {
		s += "127.0.1.1\t" + hostname + "\n"
	}
	return []byte(s)
}

// writePodFiles writes hostname, resolv.conf and hosts into dir.
func writePodFiles(dir string, cfg *runtime.PodSandboxConfig, hostNetwork bool, hostResolv, hostHosts string) error {
	hostname := cfg.GetHostname()
	if hostname == "" || hostNetwork {
		h, err := os.Hostname()
		if err != nil {
			return err
		}
		if hostname == "" {
			hostname = h
		}
	}
	if err := os.WriteFile(dir+"/"+hostnameFile, []byte(hostname+"\n"), 0o644); err != nil {
		return err
	}

	var resolv []byte
	if dns := cfg.GetDnsConfig(); dns != nil {
		resolv = resolvConf(dns)
	} else {
		b, err := os.ReadFile(hostResolv)
		if err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("reading the host's resolv.conf: %w", err)
		}
		resolv = b
	}
	if err := os.WriteFile(dir+"/"+resolvFile, resolv, 0o644); err != nil {
		return err
	}

	hosts := defaultHosts(cfg.GetHostname())
	if hostNetwork {
		b, err := os.ReadFile(hostHosts)
		if err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("reading the host's hosts file: %w", err)
		}
		hosts = b
	}
	return os.WriteFile(dir+"/"+hostsFile, hosts, 0o644)
}

// mountShm mounts the pod's own /dev/shm: a tmpfs of size bytes at path.
func mountShm(path string, size int64) error {
	if err := os.MkdirAll(path, 0o700); err != nil {
		return err
	}
	opts := fmt.Sprintf("mode=1777,size=%d", size)
	if err := unix.Mount("shm", path, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, opts); err != nil {
		os.Remove(path)
		return fmt.Errorf("mounting the pod's /dev/shm at %s: %w", path, err)
	}
	return nil
}
