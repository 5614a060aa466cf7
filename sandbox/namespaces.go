package sandbox

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	goruntime "runtime"

	"golang.org/x/sys/unix"
)

var nsFlags = map[string]int{
	NSNet: unix.CLONE_NEWNET,
	NSIPC: unix.CLONE_NEWIPC,
	NSUTS: unix.CLONE_NEWUTS,
}

// pinNamespaces creates new namespaces of the given kinds and bind-mounts
// each one to dir/<kind>, so that they exist before the pause starts (CNI
// can configure the network first) and after it dies (teardown can still
// enter them). A new network namespace gets its loopback up; a new UTS
// namespace gets hostname, when it is not empty.
//
// It returns the pinned paths by kind. On error nothing is left pinned.
func pinNamespaces(dir string, kinds []string, hostname string) (map[string]string, error) {
	if len(kinds) == 0 {
		return nil, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	type result struct {
		paths map[string]string
		err   error
	}
	res := make(chan result, 1)
	go func() {
		// This thread leaves the host's namespaces for good. It is never
		// unlocked, so the Go runtime ends the thread with this goroutine
		// instead of handing it to other goroutines.
		goruntime.LockOSThread()
		paths, err := pinOnThisThread(dir, kinds, hostname)
		res <- result{paths, err}
	}()
	r := <-res
	return r.paths, r.err
}

func pinOnThisThread(dir string, kinds []string, hostname string) (_ map[string]string, retErr error) {
	flags := 0
	for _, k := range kinds {
		flags |= nsFlags[k]
	}
	if err := unix.Unshare(flags); err != nil {
		return nil, fmt.Errorf("unshare %v: %w", kinds, err)
	}
	paths := map[string]string{}
	defer func() {
		if retErr != nil {
			unpinNamespaces(paths)
		}
	}()
	for _, k := range kinds {
		switch k {
		case NSUTS:
			if hostname != "" {
				if err := unix.Sethostname([]byte(hostname)); err != nil {
					return nil, fmt.Errorf("setting hostname %q: %w", hostname, err)
				}
			}
		case NSNet:
			if err := loopbackUp(); err != nil {
				return nil, fmt.Errorf("bringing up loopback: %w", err)
			}
		}
		p := filepath.Join(dir, k)
		f, err := os.OpenFile(p, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
		if err != nil {
			return nil, err
		}
		f.Close()
		if err := unix.Mount("/proc/thread-self/ns/"+k, p, "", unix.MS_BIND, ""); err != nil {
			os.Remove(p)
			return nil, fmt.Errorf("pinning %s namespace at %s: %w", k, p, err)
		}
		paths[k] = p
	}
	return paths, nil
}

// loopbackUp sets IFF_UP on lo in the calling thread's network namespace.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}

// unpinNamespaces unmounts and removes pinned namespace files. Paths that
// are already gone are fine; it returns the first other error.
func unpinNamespaces(paths map[string]string) error {
	var first error
	for _, p := range paths {
		if err := unmountAndRemove(p); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// unmountAndRemove detaches whatever is mounted at p and removes p. Safe
// on a path that is not mounted or does not exist.
func unmountAndRemove(p string) error {
	for {
		err := unix.Unmount(p, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW)
		if err == nil {
			continue // stacked mounts: peel them all
		}
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
			break
		}
		return fmt.Errorf("unmounting %s: %w", p, err)
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// pinFromProcess bind-mounts the namespaces of kinds that process pid is
// in to dir/<kind>. On error nothing is left pinned.
func pinFromProcess(dir string, pid int, kinds []string) (_ map[string]string, retErr error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	paths := map[string]string{}
	defer func() {
		if retErr != nil {
			unpinNamespaces(paths)
		}
	}()
	for _, k := range kinds {
		p := filepath.Join(dir, k)
		f, err := os.OpenFile(p, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
		if err != nil {
			return nil, err
		}
		f.Close()
		src := fmt.Sprintf("/proc/%d/ns/%s", pid, k)
		if err := unix.Mount(src, p, "", unix.MS_BIND, ""); err != nil {
			os.Remove(p)
			return nil, fmt.Errorf("pinning %s: %w", src, err)
		}
		paths[k] = p
	}
	return paths, nil
}
