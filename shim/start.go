package shim

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// execFifo is the FIFO in a container's libcontainer state directory on
// which its init waits, between create and start, before it execs the
// container's process.
const execFifo = "exec.fifo"

// errInitGone says a container's init died before its process started.
var errInitGone = errors.New("the container's init exited before its process started")

// openExecFifo does what `husk-runc start` (libcontainer's Container.Exec)
// does, without an exec of husk-runc (~4 ms): it opens the exec FIFO for
// reading, which lets the init's open for writing return; the init writes
// one byte and execs the container's process, which closes its end. The
// FIFO is then removed, which is how libcontainer tells a running
// container from a created one. libcontainer notices a dead init by
// polling its pid; the shim is told by its reaper (exited).
//
// It returns fs.ErrNotExist when there is no FIFO to open (a libcontainer
// that keeps it elsewhere): the caller then runs husk-runc start.
func openExecFifo(stateDir string, exited <-chan struct{}) error {
	path := filepath.Join(stateDir, execFifo)
	if _, err := os.Lstat(path); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() {
		// Blocking: between create's return and the init's own open of
		// the FIFO there is a moment when a non-blocking reader would
		// find no writer and read end-of-file.
		f, err := os.OpenFile(path, os.O_RDONLY, 0)
		if err != nil {
			done <- err
			return
		}
		defer f.Close()
		b, err := io.ReadAll(f)
		if err == nil && len(b) == 0 {
			err = errInitGone
		}
		if err == nil {
			if err = os.Remove(path); errors.Is(err, fs.ErrNotExist) {
				err = nil
			}
		}
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-exited:
	}
	// The init is gone. It may have written its byte and exec'd a process
	// that exited at once, and then the reader has its answer; otherwise
	// nobody will open the FIFO for writing now: do it, so that the open
	// above returns (and reads end-of-file). That open refuses while no
	// reader is waiting yet, hence the retries.
	for i := 0; i < 1000; i++ {
		select {
		case err := <-done:
			return err
		default:
		}
		if w, err := os.OpenFile(path, os.O_WRONLY|unix.O_NONBLOCK, 0); err == nil {
			w.Close()
		}
		time.Sleep(time.Millisecond)
	}
	// The reader never got as far as its open: without the FIFO that open
	// fails instead of waiting for ever.
	_ = os.Remove(path)
	return errInitGone
}
