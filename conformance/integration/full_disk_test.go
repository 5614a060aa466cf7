package integration

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/huskrt/husk/conformance/huskdtest"
	"github.com/huskrt/husk/conformance/images"
	"github.com/huskrt/husk/shim"
	"github.com/huskrt/husk/shim/shimapi"
)

// A full disk (issue 18.7). husk's root and the pods' log directory are
// on a small ext4 filesystem of the test's own (loop-mounted, no blocks
// reserved for root, which huskd is), filled to its last block while a
// container writes a line every 20 ms. A pull and a CreateContainer then
// RunPodSandbox fail ResourceExhausted and leave nothing (no record, blob, layer or
// temp file; the image store's index in memory as on disk), the
// container keeps running while its log lines are dropped, and once the
// filler is deleted its log resumes and the same pull and create succeed.
func TestFullDisk(t *testing.T) {
	mnt := loopFilesystem(t, 96<<20)
	reg := images.StartRegistry(t)
	h := huskdtest.Prepare(t, huskdtest.Config(t, fmt.Sprintf("[registry]\nconfig_path = %q\n", reg.MirrorConfig(t, "registry.k8s.io", "docker.io")))...)
	h.Root = filepath.Join(mnt, "root")
	h.Launch()
	ctx := context.Background()

	reg.Push(t, "e2e-test-images/busybox:1.29-2", busyboxTestImage(t))
	if _, err := h.Images.PullImage(ctx, spec(busyboxRef), nil, nil); err != nil {
		t.Fatal(err)
	}
	big := make([]byte, 8<<20) // random: gzip cannot make it smaller
	if _, err := rand.Read(big); err != nil {
		t.Fatal(err)
	}
	reg.Push(t, "e2e-test-images/big:1", images.Image(images.Config{Cmd: []string{"sh"}}, images.Layer(images.File{Name: "big", Body: big, Mode: 0o644})))
	const bigRef = "registry.k8s.io/e2e-test-images/big:1"

	pod, podCfg := podWithLogs(t, h, "full-disk", func(c *runtime.PodSandboxConfig) {
		c.LogDirectory = filepath.Join(mnt, "logs")
	})
	writer := runCtr(t, h, pod, podCfg, ctrConfig("writer", "sh", "-c", `i=0; while :; do echo "line $i"; i=$((i+1)); usleep 20000; done`))
	logPath := filepath.Join(podCfg.LogDirectory, "writer.log")
	huskdtest.Eventually(t, 30*time.Second, "the writer logs", func() bool {
		return strings.Contains(logText(t, logPath), "line 3\n")
	})

	filler := fill(t, mnt)
	shimLog := filepath.Join(h.State, "pods", pod, shimapi.LogName)
	huskdtest.Eventually(t, 60*time.Second, "the shim finds the log's filesystem full", func() bool {
		b, _ := os.ReadFile(shimLog)
		return bytes.Contains(b, []byte("Writing container log failed"))
	})
	before := storeContents(t, h)

	_, err := h.Images.PullImage(ctx, spec(bigRef), nil, nil)
	wantExhausted(t, "PullImage on a full disk", err)
	_, err = h.Runtime.CreateContainer(ctx, pod, ctrConfig("late", "sleep", "1000"), podCfg)
	wantExhausted(t, "CreateContainer on a full disk", err)
	late := huskdtest.PodConfig("late")
	late.LogDirectory = podCfg.LogDirectory
	_, err = h.Runtime.RunPodSandbox(ctx, late, "")
	wantExhausted(t, "RunPodSandbox on a full disk", err)

	if after := storeContents(t, h); after != before {
		t.Errorf("the failed pull and create left content behind:\nbefore %s\nafter  %s", before, after)
	}
	if tmp, _ := os.ReadDir(filepath.Join(h.Root, "images", "tmp")); len(tmp) != 0 {
		t.Errorf("left in the image store's tmp/: %v", tmp)
	}
	if st, err := h.Images.ImageStatus(ctx, spec(bigRef), false); err != nil || st.GetImage() != nil {
		t.Errorf("ImageStatus of the image whose pull failed: %v, %v; want none", st.GetImage(), err)
	}
	if pods, err := h.Runtime.ListPodSandbox(ctx, nil); err != nil || len(pods) != 1 {
		t.Errorf("ListPodSandbox after the failed RunPodSandbox: %d pods, %v; want one", len(pods), err)
	}
	ctrs, err := h.Runtime.ListContainers(ctx, nil)
	if err != nil || len(ctrs) != 1 {
		t.Errorf("ListContainers after the failed create: %d containers, %v; want the writer alone", len(ctrs), err)
	}
	if st := ctrStatus(t, h, writer); st.State != runtime.ContainerState_CONTAINER_RUNNING {
		t.Fatalf("the writer is %v on a full disk, want running", st.State)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	// Lines written while the disk was full are lost, the ones after it
	// arrive: the counter jumps.
	huskdtest.Eventually(t, 60*time.Second, "the writer's log resumes after a gap", func() bool {
		_, gap := counterGap(t, logPath)
		return gap
	})
	if _, err := h.Images.PullImage(ctx, spec(bigRef), nil, nil); err != nil {
		t.Errorf("PullImage once space is freed: %v", err)
	}
	lateCtr := createCtr(t, h, pod, podCfg, ctrConfig("late", "sleep", "1000"))
	if err := h.Runtime.StartContainer(ctx, lateCtr); err != nil {
		t.Errorf("StartContainer once space is freed: %v", err)
	}
	if _, err := h.Runtime.RunPodSandbox(ctx, late, ""); err != nil {
		t.Errorf("RunPodSandbox once space is freed: %v", err)
	}
	if st := ctrStatus(t, h, writer); st.State != runtime.ContainerState_CONTAINER_RUNNING {
		t.Errorf("the writer is %v after the disk was full, want running", st.State)
	}
}

func wantExhausted(t *testing.T, what string, err error) {
	t.Helper()
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "no space left on device") {
		t.Errorf("%s: %v; want ResourceExhausted, no space left on device", what, err)
	}
}

// counterGap reads the writer's "line N" records: the last N, and whether
// a number is missing between two records (lines dropped, then written
// again).
func counterGap(t *testing.T, path string) (last int, gap bool) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`^line (\d+)$`)
	last = -1
	for _, line := range bytes.Split(b, []byte("\n")) {
		// A record the full disk cut short ends at the newline the shim
		// puts before the next one; kubelet skips it as unparsable.
		_, _, partial, content, err := shim.ParseLogLine(line)
		m := re.FindSubmatch(content)
		if err != nil || partial || m == nil {
			continue
		}
		n, _ := strconv.Atoi(string(m[1]))
		if last >= 0 && n > last+1 {
			gap = true
		}
		last = n
	}
	return last, gap
}

// storeContents lists the image store's blobs and layers, the containers'
// directories and the index, as one string to compare.
func storeContents(t *testing.T, h *huskdtest.Huskd) string {
	t.Helper()
	var b strings.Builder
	for _, d := range []string{"images/blobs/sha256", "images/layers", "containers", "pods"} {
		entries, err := os.ReadDir(filepath.Join(h.Root, d))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s:", d)
		for _, e := range entries {
			fmt.Fprintf(&b, " %.12s", e.Name())
		}
		b.WriteString("; ")
	}
	idx, err := os.ReadFile(filepath.Join(h.Root, "images", "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(&b, "index.json: %d bytes", len(idx))
	return b.String()
}

// loopFilesystem makes an ext4 filesystem of size bytes in a file and
// mounts it (mount -o loop: the loop device goes with the unmount) on a
// directory of its own outside any huskd's, so that huskd's checks do not
// count it as a leak. Its cleanup runs after huskd's.
func loopFilesystem(t *testing.T, size int64) string {
	t.Helper()
	if _, err := exec.LookPath("mkfs.ext4"); err != nil {
		t.Skip("no mkfs.ext4:", err)
	}
	img := filepath.Join(t.TempDir(), "disk.img")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	err = f.Truncate(size)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	// -m 0: huskd is root, and would write on into blocks reserved for it.
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", "-m", "0", img).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v: %s", err, out)
	}
	mnt, err := os.MkdirTemp("/tmp", "hkdisk")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-o", "loop", img, mnt).CombinedOutput(); err != nil {
		_ = os.Remove(mnt)
		t.Skipf("cannot loop-mount a filesystem here: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", mnt, err, out)
			return
		}
		_ = os.Remove(mnt)
	})
	// As /var/lib is: passable by pods' unprivileged host IDs.
	if err := os.Chmod(mnt, 0o711); err != nil {
		t.Fatal(err)
	}
	return mnt
}

// fill writes a file on the filesystem at dir until no block is left, and
// returns its path.
func fill(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "filler")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, chunk := range []int{1 << 20, 4 << 10, 512} {
		buf := make([]byte, chunk)
		for {
			if _, err := f.Write(buf); err != nil {
				if !errors.Is(err, syscall.ENOSPC) {
					t.Fatal(err)
				}
				break
			}
		}
	}
	if err := f.Sync(); err != nil && !errors.Is(err, syscall.ENOSPC) {
		t.Fatal(err)
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	t.Logf("filled %s: %d blocks of %d free", dir, st.Bfree, st.Blocks)
	return p
}
