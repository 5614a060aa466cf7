package container

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// maxSeccompProfile bounds a Localhost seccomp profile. The default
// profile is ~25 KiB as JSON: 1 MiB is forty times that.
const maxSeccompProfile = 1 << 20

// readSeccompProfile reads the Localhost seccomp profile at file, an
// absolute path. One under root is opened within root, so that no symlink
// there leads out of it; one elsewhere is the CRI caller's to name (critest
// writes its profiles to a temporary directory). Only a regular file is
// read, and at most maxSeccompProfile bytes of it: a FIFO would block the
// call and /dev/zero never end it.
func readSeccompProfile(root, file string) ([]byte, error) {
	f, err := openSeccompProfile(root, file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("not a regular file (%s)", st.Mode().Type())
	}
	b, err := io.ReadAll(io.LimitReader(f, maxSeccompProfile+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxSeccompProfile {
		return nil, fmt.Errorf("larger than %d bytes (1 MiB)", maxSeccompProfile)
	}
	return b, nil
}

func openSeccompProfile(root, file string) (*os.File, error) {
	// O_NONBLOCK: opening a FIFO for reading must not wait for a writer.
	const flags = os.O_RDONLY | unix.O_NONBLOCK
	if root != "" {
		if rel, err := filepath.Rel(root, file); err == nil && rel != ".." && !strings.HasPrefix(rel, "../") {
			r, err := os.OpenRoot(root)
			if err != nil {
				return nil, err
			}
			defer r.Close()
			return r.OpenFile(rel, flags, 0)
		}
	}
	return os.OpenFile(file, flags, 0)
}
