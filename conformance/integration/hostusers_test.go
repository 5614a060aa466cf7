package integration

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/huskrt/husk/conformance/huskdtest"
	"github.com/huskrt/husk/conformance/images"
)

// nobody is the host user of the attacks below: any local user, who learns
// every pod's and container's ID from /proc/self/mountinfo.
const nobody = 65534

// planted is what a container left in its writable layer for a host user
// to find, and where that user would look for it.
type planted struct {
	name   string
	rootfs string // the container's overlay mount on the host
	upper  string // its writable layer
	shm    string // its pod's /dev/shm tmpfs ("" for none)
	device bool   // whether the container could make a device node
}

// plantCommand writes, from inside the container as its root: a
// setuid-root copy of busybox (named so, since busybox picks its applet
// by its name), a script, a secret file and (where mknod is allowed: not
// in a user namespace) a device node anyone may write, all in the
// container's writable layer.
const plantCommand = `cp /bin/busybox /busybox && chmod 4755 /busybox &&
printf '#!/bin/sh\necho ran\n' > /script && chmod 755 /script &&
echo secret > /secret && chmod 644 /secret &&
{ mknod -m 666 /null c 1 3 || true; } &&
touch /ready && exec sleep 1000`

// plant runs a container that plants its files, waits for them, and finds
// its rootfs and writable layer in the mount table, as an attacker would.
func plant(t *testing.T, h *huskdtest.Huskd, pod string, podCfg *runtime.PodSandboxConfig, name string, userns *runtime.UserNamespace) planted {
	t.Helper()
	cfg := ctrConfig(name, "sh", "-c", plantCommand)
	cfg.Linux.SecurityContext.NamespaceOptions.UsernsOptions = userns
	id := runCtr(t, h, pod, podCfg, cfg)
	p := planted{name: name}
	huskdtest.Eventually(t, 30*time.Second, name+" plants its files", func() bool {
		p.rootfs, p.upper = overlayOf(t, id)
		_, err := os.Stat(filepath.Join(p.upper, "ready"))
		return err == nil
	})
	_, info := h.PodInfo(pod)
	p.shm = info.ShmPath
	_, err := os.Stat(filepath.Join(p.upper, "null"))
	p.device = err == nil
	return p
}

// overlayOf finds a container's overlay in /proc/self/mountinfo: its mount
// point and its upperdir.
func overlayOf(t *testing.T, id string) (rootfs, upper string) {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		sep := -1
		for i, x := range f {
			if x == "-" {
				sep = i
				break
			}
		}
		if sep < 0 || len(f) < sep+4 || f[sep+1] != "overlay" || !strings.Contains(f[4], id) {
			continue
		}
		for _, o := range strings.Split(f[sep+3], ",") {
			if v, ok := strings.CutPrefix(o, "upperdir="); ok {
				return f[4], v
			}
		}
	}
	t.Fatalf("no overlay of container %s in the mount table", id)
	return "", ""
}

// probe is one attempt of a host user on a container's files.
type probe struct {
	what string
	argv []string
	// rootOut is what the command prints when root runs it: the control
	// that shows the probe reaches what it means to.
	rootOut string
}

func (p planted) probes() []probe {
	ps := []probe{
		{"read a file in the rootfs", []string{"cat", filepath.Join(p.rootfs, "secret")}, "secret\n"},
		{"read a file in the writable layer", []string{"cat", filepath.Join(p.upper, "secret")}, "secret\n"},
		{"run the setuid copy in the writable layer", []string{filepath.Join(p.upper, "busybox"), "echo", "ran"}, "ran\n"},
		{"run the setuid copy in the rootfs", []string{filepath.Join(p.rootfs, "busybox"), "echo", "ran"}, "ran\n"},
		{"run the script in the rootfs", []string{filepath.Join(p.rootfs, "script")}, "ran\n"},
		{"run the script in the writable layer", []string{filepath.Join(p.upper, "script")}, "ran\n"},
	}
	if p.device {
		ps = append(ps, probe{"write to the device node in the writable layer",
			[]string{"sh", "-c", "echo x > " + filepath.Join(p.upper, "null") + " && echo wrote"}, "wrote\n"})
	}
	if p.shm != "" {
		f := filepath.Join(p.shm, "from-the-host")
		ps = append(ps, probe{"write into the pod's /dev/shm",
			[]string{"sh", "-c", "echo x > " + f + " && rm " + f + " && echo wrote"}, "wrote\n"})
	}
	return ps
}

// run runs argv as root, or as nobody (no supplementary groups).
func run(argv []string, asNobody bool) (string, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	if asNobody {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody, Groups: []uint32{}}}
	}
	cmd.Dir = "/"
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// checkReachable checks each probe: root gets through (the control), and
// nobody gets through if and only if reachable.
func checkReachable(t *testing.T, p planted, reachable bool) {
	t.Helper()
	for _, pr := range p.probes() {
		if out, err := run(pr.argv, false); err != nil || !strings.Contains(out, pr.rootOut) {
			t.Fatalf("%s: control as root: %v, output %q lacks %q", p.name, err, out, pr.rootOut)
		}
		out, err := run(pr.argv, true)
		switch {
		case reachable && err != nil:
			t.Errorf("%s: as nobody, %s: %v %s (the probe should get through here)", p.name, pr.what, err, out)
		case !reachable && err == nil:
			t.Errorf("%s: the host user nobody could %s: %s %q", p.name, pr.what, strings.Join(pr.argv, " "), out)
		case !reachable && !strings.Contains(strings.ToLower(out+err.Error()), "permission denied"):
			t.Errorf("%s: as nobody, %s failed, but not for lack of permission: %v %s", p.name, pr.what, err, out)
		}
	}
}

// userns is the user namespace of the pods below that have their own.
func usernsPod() *runtime.UserNamespace {
	m := []*runtime.IDMapping{{ContainerId: 0, HostId: 100000, Length: 65536}}
	return &runtime.UserNamespace{Mode: runtime.NamespaceMode_POD, Uids: m, Gids: m}
}

// A host user who knows a container's ID (the mount table shows them all)
// cannot read its rootfs or writable layer, run a setuid binary or a
// script the container left there, write to a device node it made, write
// into its pod's /dev/shm, or run a setuid binary an image ships: the
// class of containerd's CVE-2021-41103 and CVE-2024-25621. Also for a pod
// in its own user namespace, whose mapped IDs do pass on the way to their
// rootfs.
func TestHostUsersCannotReachContainers(t *testing.T) {
	h, reg := ctrHuskd(t, "")
	ctx := context.Background()

	pod, podCfg := podWithLogs(t, h, "plain", nil)
	p := plant(t, h, pod, podCfg, "plain", nil)
	if !p.device {
		t.Fatalf("the container could not make a device node")
	}
	checkReachable(t, p, false)
	// What keeps host users out is above the writable layer, whose mode
	// is the container's "/": its users list it, as an image's root.
	user := ctrConfig("user", "ls", "/")
	user.Linux.SecurityContext.RunAsUser = &runtime.Int64Value{Value: 1000}
	if st, out := runToExit(t, h, pod, podCfg, user); st.ExitCode != 0 || !strings.Contains(out, "stdout bin\n") {
		t.Errorf("a container's user lists its /: exit %d\n%s", st.ExitCode, out)
	}

	userns := usernsPod()
	upod, upodCfg := podWithLogs(t, h, "userns", func(c *runtime.PodSandboxConfig) {
		c.Linux.SecurityContext.NamespaceOptions.UsernsOptions = userns
	})
	checkReachable(t, plant(t, h, upod, upodCfg, "userns", userns), false)

	// An image's setuid-root binary, unpacked in the image store.
	bb, err := images.BusyboxPath()
	if err != nil {
		t.Skip(err)
	}
	body, err := os.ReadFile(bb)
	if err != nil {
		t.Fatal(err)
	}
	reg.Push(t, "test/suid:1", images.Image(images.Config{}, images.Layer(images.File{Name: "suid/"}, images.File{Name: "suid/busybox", Body: body, Mode: 0o4755})))
	if _, err := h.Images.PullImage(ctx, spec("registry.k8s.io/test/suid:1"), nil, nil); err != nil {
		t.Fatal(err)
	}
	shipped, _ := filepath.Glob(filepath.Join(h.Root, "images", "layers", "*", "suid", "busybox"))
	if len(shipped) != 1 {
		t.Fatalf("the image's setuid binary in the layers: %v", shipped)
	}
	argv := []string{shipped[0], "echo", "ran"}
	if out, err := run(argv, false); err != nil || out != "ran\n" {
		t.Fatalf("control as root: %v %q", err, out)
	}
	if out, err := run(argv, true); err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Errorf("the host user nobody ran an image's setuid binary in the layer store: %v %q", err, out)
	}
}

// A huskd started over the directories an older huskd left passable
// (0711 and 0755) makes them unreachable again, and a pod in its own user
// namespace still gets new containers.
func TestRestartTightensOlderDirectories(t *testing.T) {
	h, _ := ctrHuskd(t, "")
	pod, podCfg := podWithLogs(t, h, "plain", nil)
	p := plant(t, h, pod, podCfg, "plain", nil)
	userns := usernsPod()
	upod, upodCfg := podWithLogs(t, h, "userns", func(c *runtime.PodSandboxConfig) {
		c.Linux.SecurityContext.NamespaceOptions.UsernsOptions = userns
	})
	up := plant(t, h, upod, upodCfg, "userns", userns)
	h.Stop()

	// As huskd made them before: everything on the way to a container's
	// files passable, the CNI cache and pause rootfs readable.
	loosen := func(mode os.FileMode, paths ...string) {
		for _, d := range paths {
			if err := os.Chmod(d, mode); err != nil {
				t.Fatal(err)
			}
		}
	}
	loosen(0o711, h.Root, h.State, filepath.Join(h.Root, "pods"), filepath.Join(h.State, "pods"),
		filepath.Join(h.Root, "containers"), filepath.Join(h.Root, "images", "layers"))
	loosen(0o755, filepath.Join(h.Root, "cni"), filepath.Join(h.Root, "pause"))
	for _, id := range []string{pod, upod} {
		if err := os.Chown(filepath.Join(h.State, "pods", id), -1, 0); err != nil {
			t.Fatal(err)
		}
		loosen(0o711, filepath.Join(h.Root, "pods", id), filepath.Join(h.State, "pods", id),
			filepath.Join(h.State, "pods", id, "containers"))
	}
	for _, x := range []planted{p, up} {
		loosen(0o711, filepath.Dir(x.rootfs), filepath.Dir(x.upper), x.upper)
	}
	// The probes get through now: they would catch huskd leaving it so.
	checkReachable(t, p, true)

	h.Launch()
	checkReachable(t, p, false)
	checkReachable(t, up, false)
	// The pod in its own user namespace: its mapped root passes again on
	// the way to a new container's rootfs.
	_, out := runToExit(t, h, upod, upodCfg, func() *runtime.ContainerConfig {
		cfg := ctrConfig("after", "id", "-u")
		cfg.Linux.SecurityContext.NamespaceOptions.UsernsOptions = userns
		return cfg
	}())
	if !strings.Contains(out, "stdout 0\n") {
		t.Errorf("a new container in the user-namespace pod after the restart printed %q", out)
	}
}
