package container

import (
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// maxSeccompProfile bounds a Localhost seccomp profile. The default
// profile is ~25 KiB as JSON: 1 MiB is forty times that.
const maxSeccompProfile = 1 << 20

// readSeccompProfile reads the Localhost seccomp profile at file. Only a
// regular file is read, and at most maxSeccompProfile bytes of it: a FIFO
// would block the call and /dev/zero never end it.
//
// Symlinks are followed: the profile root is the node administrator's
// (the security-profiles-operator links <root>/operator to
// /var/lib/security-profiles-operator), and pod authors can only name a
// path in it, which localhostSeccomp keeps from climbing with "..".
func readSeccompProfile(file string) ([]byte, error) {
	// O_NONBLOCK: opening a FIFO for reading must not wait for a writer.
	f, err := os.OpenFile(file, os.O_RDONLY|unix.O_NONBLOCK, 0)
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
