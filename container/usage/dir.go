package usage

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// DirUsage measures a container's writable layer as kubelet's stats and
// cadvisor's container_fs_usage_bytes want it: the apparent size of its
// regular files and the number of its inodes, each hard-linked inode once.
// It stays on dir's filesystem: a volume mounted inside the layer is not
// the container's disk use. Files a running container deletes meanwhile
// are simply not counted; dir itself missing, or vanishing before it is
// read, is an error wrapping os.ErrNotExist.
func DirUsage(dir string) (bytes, inodes uint64, err error) {
	root, err := os.Lstat(dir)
	if err != nil {
		return 0, 0, fmt.Errorf("measuring %s: %w", dir, err)
	}
	rootSt, ok := root.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, fmt.Errorf("measuring %s: no stat_t", dir)
	}
	seen := make(map[uint64]struct{}) // inodes with more than one link
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil && p == dir {
			return err // the layer itself gone: nothing to report, not 0
		}
		if err != nil {
			return walkError(p, err)
		}
		st, err := lstatEntry(d)
		if err != nil || st == nil {
			return walkError(p, err)
		}
		if st.Dev != rootSt.Dev {
			return skipEntry(d)
		}
		if st.Nlink > 1 && st.Mode&syscall.S_IFMT != syscall.S_IFDIR {
			if _, dup := seen[st.Ino]; dup {
				return nil
			}
			seen[st.Ino] = struct{}{}
		}
		inodes++
		if st.Mode&syscall.S_IFMT == syscall.S_IFREG {
			bytes += uint64(st.Size)
		}
		return nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("measuring %s: %w", dir, err)
	}
	return bytes, inodes, nil
}

func lstatEntry(d fs.DirEntry) (*syscall.Stat_t, error) {
	fi, err := d.Info()
	if err != nil {
		return nil, err
	}
	st, _ := fi.Sys().(*syscall.Stat_t)
	return st, nil
}

// walkError lets a running container delete files under the walk: what
// vanished is simply not counted.
func walkError(p string, err error) error {
	if err == nil || errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return fmt.Errorf("%s: %w", p, err)
}

func skipEntry(d fs.DirEntry) error {
	if d.IsDir() {
		return filepath.SkipDir
	}
	return nil
}
