package shim

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// fakeInit stands in for a container's init waiting on its exec FIFO: it
// opens it for writing (blocking until a reader comes), writes what it is
// given and closes it, as the exec of the container's process does; then,
// if asked, it is reaped at once (the process exited straight away).
func fakeInit(t *testing.T, path, write string, reaped chan struct{}) {
	t.Helper()
	go func() {
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			t.Error(err)
			return
		}
		_, _ = f.WriteString(write)
		f.Close()
		if reaped != nil {
			close(reaped)
		}
	}()
}

func TestOpenExecFifo(t *testing.T) {
	cases := []struct {
		name string
		// init plays the container's init; nil: it never opens the FIFO
		// and is reaped after 20 ms.
		init       func(t *testing.T, path string, exited chan struct{})
		want       error
		fifoRemain bool
	}{
		{name: "started", init: func(t *testing.T, p string, _ chan struct{}) { fakeInit(t, p, "0", nil) }},
		{name: "started and exited at once", init: func(t *testing.T, p string, exited chan struct{}) { fakeInit(t, p, "0", exited) }},
		{name: "init gone before opening the FIFO", want: errInitGone, fifoRemain: true},
		{name: "init gone after opening it", init: func(t *testing.T, p string, _ chan struct{}) { fakeInit(t, p, "", nil) }, want: errInitGone, fifoRemain: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, execFifo)
			if err := unix.Mkfifo(path, 0o600); err != nil {
				t.Fatal(err)
			}
			exited := make(chan struct{})
			if c.init != nil {
				// Late, as the init may reach its open after create returned.
				time.AfterFunc(20*time.Millisecond, func() { c.init(t, path, exited) })
			} else {
				time.AfterFunc(20*time.Millisecond, func() { close(exited) })
			}
			err := openExecFifo(dir, exited)
			if !errors.Is(err, c.want) {
				t.Fatalf("openExecFifo = %v, want %v", err, c.want)
			}
			if _, err := os.Lstat(path); (err == nil) != c.fifoRemain {
				t.Errorf("FIFO there afterwards: %v, want %v", err == nil, c.fifoRemain)
			}
		})
	}
	if err := openExecFifo(t.TempDir(), nil); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("without a FIFO: %v, want ErrNotExist (husk-runc start is used then)", err)
	}
}
