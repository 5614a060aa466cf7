package metrics

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/huskrt/husk/container/usage"
)

// writableLayerMetrics reports the container's writable layer: its usage
// (the apparent size of its files, as the CRI stats report it), and the
// size and inodes of the filesystem it is on, all labelled with that
// filesystem's device as cadvisor labels them. The device is looked up
// for the label only: usage.DirUsage keeps to the layer's filesystem.
func writableLayerMetrics(e *emitter, dir string) {
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return
	}
	dev := filesystemDevice(uint64(st.Dev))
	var fsst unix.Statfs_t
	if err := unix.Statfs(dir, &fsst); err == nil {
		e.add(fsLimit, fsst.Blocks*uint64(fsst.Bsize), dev)
		// Filesystems without a fixed inode table (btrfs) report 0 inodes:
		// not a count, so left out.
		if fsst.Files > 0 {
			e.add(fsInodesTotal, fsst.Files, dev)
			e.add(fsInodesFree, fsst.Ffree, dev)
		}
	}
	if n, _, err := usage.DirUsage(dir); err == nil {
		e.add(fsUsage, n, dev)
	}
}

// filesystemDevice names the filesystem with device number dev by its
// mount source in /proc/self/mountinfo (/dev/vda1, overlay, tmpfs), as
// cadvisor's device label does, falling back to "major:minor".
func filesystemDevice(dev uint64) string {
	id := fmt.Sprintf("%d:%d", unix.Major(dev), unix.Minor(dev))
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return id
	}
	defer f.Close()
	if src := mountSource(f, id); src != "" {
		return src
	}
	return id
}

// mountSource finds the source of the first mount of device id
// ("major:minor") in mountinfo, whose lines read
// "mount-id parent-id major:minor root mountpoint options [optional...] - fstype source super-options".
func mountSource(r io.Reader, id string) string {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 3 || fields[2] != id {
			continue
		}
		for i, f := range fields {
			if f == "-" && i+2 < len(fields) {
				return unescapeMountinfo(fields[i+2])
			}
		}
	}
	return ""
}

// unescapeMountinfo undoes the kernel's octal escapes (\040 for a space).
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }

// deviceNames names block devices by major:minor, once per scrape.
type deviceNames map[[2]uint64]string

// get returns /dev/<DEVNAME> from the device's uevent in sysfs, as
// cadvisor names the devices of its I/O metrics, else "major:minor".
func (n deviceNames) get(major, minor uint64) string {
	key := [2]uint64{major, minor}
	if name, ok := n[key]; ok {
		return name
	}
	id := fmt.Sprintf("%d:%d", major, minor)
	name := id
	if dev := ueventDevname(fmt.Sprintf("/sys/dev/block/%s/uevent", id)); dev != "" {
		name = "/dev/" + dev
	}
	n[key] = name
	return name
}

func ueventDevname(file string) string {
	b, err := os.ReadFile(file)
	if err != nil {
		return ""
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "DEVNAME="); ok {
			return v
		}
	}
	return ""
}
