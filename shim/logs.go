package shim

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/klog/v2"

	"github.com/huskrt/husk/shim/shimapi"
)

// The CRI log format, as kubelet reads it (pkg/kubelet/kuberuntime/logs):
//
//	<RFC3339Nano timestamp> <stream> <tag> <content>\n
//
// The tag is "F" when content ends a line of the container's output (its
// newline is not part of content) and "P" when more of the line follows.
const (
	StreamStdout = "stdout"
	StreamStderr = "stderr"

	tagFull    = "F"
	tagPartial = "P"

	// MaxLogLine is the longest content of one record: containerd's default
	// max_container_log_line_size. A longer line is cut into P pieces of
	// exactly this size, so that a container printing a huge line without
	// a newline cannot make the shim buffer it whole.
	MaxLogLine = 16 * 1024

	// minLogRead is what a stream's read buffer starts at and what it keeps
	// free beyond MaxLogLine once grown: most containers print short lines,
	// and the shim is paid per pod.
	minLogRead = 4 * 1024
)

// LogWriter writes one container's output to its CRI log file.
//
// Both streams go to the same file, each copied by its own goroutine; every
// record is assembled whole in one buffer and written with one write(2)
// under mu, so that records never interleave and their timestamps never go
// backwards in the file.
type LogWriter struct {
	path    string
	now     func() time.Time
	maxLine int

	mu     sync.Mutex
	f      *os.File // nil when discarding, after Close, or if opening failed
	closed bool
	line   []byte // the record being written, reused
	// failing is set by the first write error on f, so that a full disk is
	// logged once per file rather than once per line.
	failing bool
	// torn is set when a failed write left part of a record in the file: the
	// next record then starts on a new line, so that only the torn record is
	// unreadable rather than the one glued to it.
	torn bool

	dropped atomic.Uint64
	// counts, when set, adds up what every log of the shim wrote.
	counts *logCounts
}

// logCounts is what a shim's logs wrote (shimapi.LogCounts), counted as
// they write.
type logCounts struct{ lines, bytes atomic.Uint64 }

func (c *logCounts) add(n int) {
	c.lines.Add(1)
	c.bytes.Add(uint64(n))
}

func (c *logCounts) read() shimapi.LogCounts {
	return shimapi.LogCounts{Lines: c.lines.Load(), Bytes: c.bytes.Load()}
}

// NewLogWriter opens the log file at path for appending, creating it and
// its directory. With path "" the output is read and thrown away: a
// container without a log path must not block on a full pipe.
func NewLogWriter(path string) (*LogWriter, error) {
	w := &LogWriter{path: path, now: time.Now, maxLine: MaxLogLine}
	if path == "" {
		return w, nil
	}
	f, err := openLog(path)
	if err != nil {
		return nil, err
	}
	w.f = f
	return w, nil
}

func openLog(path string) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("creating the directory of container log %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o640)
	if err != nil {
		return nil, fmt.Errorf("opening container log: %w", err)
	}
	return f, nil
}

// Copy writes what r yields as records of stream ("stdout" or "stderr")
// until r ends. Output left without a newline at the end is written as a P
// record, as containerd does: kubelet then shows it without a newline that
// the container never printed. Write errors do not stop the copy (the
// container would block on a full pipe); those records are dropped and
// counted. Copy returns nil at EOF and r's error otherwise.
func (w *LogWriter) Copy(stream string, r io.Reader) error {
	if stream != StreamStdout && stream != StreamStderr {
		return fmt.Errorf("log stream %q is neither %s nor %s", stream, StreamStdout, StreamStderr)
	}
	err := copyRecords(r, w.maxLine, func(partial bool, content []byte) {
		w.writeRecord(stream, partial, content)
	})
	if err != nil {
		return fmt.Errorf("reading container %s: %w", stream, err)
	}
	return nil
}

// copyRecords reads r to its end and cuts it into records of at most
// maxLine bytes, calling emit with each. content is only valid during emit.
func copyRecords(r io.Reader, maxLine int, emit func(partial bool, content []byte)) error {
	buf := make([]byte, minLogRead)
	start, end, idle := 0, 0, 0
	for {
		if start == end {
			start, end = 0, 0
		}
		if end == len(buf) {
			buf, start, end = makeRoom(buf, start, end, maxLine)
		}
		n, err := r.Read(buf[end:])
		end += n
		start += emitRecords(buf[start:end], maxLine, emit)
		if err != nil {
			if start < end {
				emit(true, buf[start:end])
			}
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if idle = idleReads(n, idle); idle > 100 {
			return io.ErrNoProgress
		}
	}
}

// makeRoom frees the end of a full buffer: by moving the pending bytes
// (never more than maxLine: emitRecords cuts longer ones) to its front, or,
// when they fill it, by growing it once to hold a whole record plus a read.
func makeRoom(buf []byte, start, end, maxLine int) ([]byte, int, int) {
	if start > 0 {
		return buf, 0, copy(buf, buf[start:end])
	}
	grown := make([]byte, maxLine+minLogRead)
	return grown, 0, copy(grown, buf[start:end])
}

// idleReads counts consecutive reads that returned nothing, as bufio does,
// so that a broken reader cannot spin the shim forever.
func idleReads(n, idle int) int {
	if n > 0 {
		return 0
	}
	return idle + 1
}

// emitRecords emits every record b holds for certain and returns the bytes
// they used: complete lines, and pieces of maxLine bytes of a line longer
// than that. What is left (at most maxLine bytes) may still become an F
// record, so it waits for more input.
func emitRecords(b []byte, maxLine int, emit func(partial bool, content []byte)) int {
	used := 0
	for {
		rest := b[used:]
		i := bytes.IndexByte(rest, '\n')
		switch {
		case i >= 0 && i <= maxLine:
			emit(false, rest[:i])
			used += i + 1
		case i > maxLine || len(rest) > maxLine:
			emit(true, rest[:maxLine])
			used += maxLine
		default:
			return used
		}
	}
}

// writeRecord writes one record. The clock is read under mu so that the
// file's timestamps are in the order of its records.
func (w *LogWriter) writeRecord(stream string, partial bool, content []byte) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		if w.path != "" {
			w.dropped.Add(1)
		}
		return
	}
	w.line = w.line[:0]
	if w.torn {
		w.line = append(w.line, '\n')
	}
	w.line = appendRecord(w.line, w.now(), stream, partial, content)
	n, err := w.f.Write(w.line)
	if err != nil {
		w.writeFailed(err, n)
		return
	}
	w.torn = false
	if w.failing {
		// Space was freed: say how much was lost, so that the gap in the
		// log has an explanation next to it.
		w.failing = false
		klog.InfoS("Writing container log again", "path", w.path, "dropped", w.dropped.Load())
	}
	if w.counts != nil {
		w.counts.add(n)
	}
}

func (w *LogWriter) writeFailed(err error, written int) {
	w.dropped.Add(1)
	w.torn = w.torn || written > 0
	if !w.failing {
		w.failing = true
		klog.ErrorS(err, "Writing container log failed; dropping its output until it is reopened", "path", w.path)
	}
}

func appendRecord(b []byte, t time.Time, stream string, partial bool, content []byte) []byte {
	b = t.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, ' ')
	b = append(b, stream...)
	if partial {
		b = append(b, " "+tagPartial+" "...)
	} else {
		b = append(b, " "+tagFull+" "...)
	}
	b = append(b, content...)
	return append(b, '\n')
}

// Reopen opens the log path again, for kubelet's rotation: it renames the
// file, then calls ReopenContainerLog. The new file is opened before the
// old one is closed: when opening fails, kubelet renames the old file back
// and output keeps going to it.
func (w *LogWriter) Reopen() error {
	if w.path == "" {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return errors.New("reopening container log: the log writer is closed")
	}
	f, err := openLog(w.path)
	if err != nil {
		return err
	}
	if w.f != nil {
		// Every record reached the kernel with write(2); a failed close of
		// the rotated file loses nothing the new file could hold.
		_ = w.f.Close()
	}
	w.f, w.failing, w.torn = f, false, false
	return nil
}

// Close closes the log file. Copies still running go on draining their
// pipes and drop (and count) what they read.
func (w *LogWriter) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closed = true
	if w.f == nil {
		return nil
	}
	err := w.f.Close()
	w.f = nil
	if err != nil {
		return fmt.Errorf("closing container log: %w", err)
	}
	return nil
}

// Dropped is the number of records lost to write errors or written after
// Close.
func (w *LogWriter) Dropped() uint64 { return w.dropped.Load() }

// ParseLogLine parses one record of a CRI log file, with or without its
// newline, as kubelet does: the tag may carry further ":"-separated tags
// after the first. content is a slice of line, without the newline.
func ParseLogLine(line []byte) (ts time.Time, stream string, partial bool, content []byte, err error) {
	if n := len(line); n > 0 && line[n-1] == '\n' {
		line = line[:n-1]
	}
	tsField, rest, ok := bytes.Cut(line, []byte{' '})
	if !ok {
		return time.Time{}, "", false, nil, errors.New("log line has no timestamp")
	}
	if ts, err = time.Parse(time.RFC3339Nano, string(tsField)); err != nil {
		return time.Time{}, "", false, nil, fmt.Errorf("log line timestamp: %w", err)
	}
	streamField, rest, ok := bytes.Cut(rest, []byte{' '})
	if !ok {
		return time.Time{}, "", false, nil, errors.New("log line has no stream")
	}
	if stream, err = parseStream(streamField); err != nil {
		return time.Time{}, "", false, nil, err
	}
	tags, content, ok := bytes.Cut(rest, []byte{' '})
	if !ok {
		return time.Time{}, "", false, nil, errors.New("log line has no tag")
	}
	if partial, err = parseTag(tags); err != nil {
		return time.Time{}, "", false, nil, err
	}
	return ts, stream, partial, content, nil
}

func parseStream(b []byte) (string, error) {
	switch string(b) {
	case StreamStdout:
		return StreamStdout, nil
	case StreamStderr:
		return StreamStderr, nil
	}
	return "", fmt.Errorf("log line stream %q is neither %s nor %s", b, StreamStdout, StreamStderr)
}

func parseTag(tags []byte) (partial bool, err error) {
	tag, _, _ := bytes.Cut(tags, []byte{':'})
	switch string(tag) {
	case tagPartial:
		return true, nil
	case tagFull:
		return false, nil
	}
	return false, fmt.Errorf("log line tag %q is neither %s nor %s", tag, tagFull, tagPartial)
}
