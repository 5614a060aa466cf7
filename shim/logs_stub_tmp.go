package shim

// Temporary stand-in for the CRI log writer (replaced by shim/logs.go).

import (
	"bufio"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"
)

type LogWriter struct {
	mu   sync.Mutex
	path string
	f    *os.File
}

func NewLogWriter(path string) (*LogWriter, error) {
	w := &LogWriter{path: path}
	return w, w.Reopen()
}

func (w *LogWriter) Reopen() error {
	if w.path == "" {
		return nil
	}
	_ = os.MkdirAll(filepath.Dir(w.path), 0o755)
	f, err := os.OpenFile(w.path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o640)
	if err != nil {
		return err
	}
	w.mu.Lock()
	if w.f != nil {
		w.f.Close()
	}
	w.f = f
	w.mu.Unlock()
	return nil
}

func (w *LogWriter) Copy(stream string, r io.Reader) error {
	br := bufio.NewReader(r)
	for {
		line, err := br.ReadString('\n')
		if len(line) > 0 {
			tag := "F"
			if line[len(line)-1] == '\n' {
				line = line[:len(line)-1]
			}
			w.mu.Lock()
			if w.f != nil {
				_, _ = w.f.WriteString(time.Now().UTC().Format(time.RFC3339Nano) + " " + stream + " " + tag + " " + line + "\n")
			}
			w.mu.Unlock()
		}
		if err != nil {
			return nil
		}
	}
}

func (w *LogWriter) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f != nil {
		return w.f.Close()
	}
	return nil
}
