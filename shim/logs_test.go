package shim

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/huskrt/husk/shim/shimapi"
)

var fixedNow = time.Date(2024, 1, 2, 3, 4, 5, 123456789, time.UTC)

type record struct {
	stream  string
	partial bool
	content string
}

func (r record) String() string {
	tag := tagFull
	if r.partial {
		tag = tagPartial
	}
	c := r.content
	if len(c) > 40 {
		c = fmt.Sprintf("%.20s…(%d bytes)", c, len(c))
	}
	return fmt.Sprintf("%s %s %q", r.stream, tag, c)
}

func newTestWriter(t testing.TB, path string) *LogWriter {
	t.Helper()
	w, err := NewLogWriter(path)
	if err != nil {
		t.Fatal(err)
	}
	w.now = func() time.Time { return fixedNow }
	t.Cleanup(func() { w.Close() })
	return w
}

// readRecords parses a log file back; every line must be a record.
func readRecords(t testing.TB, path string) []record {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var recs []record
	r := bufio.NewReader(f)
	for {
		line, err := r.ReadBytes('\n')
		if err == io.EOF {
			if len(line) > 0 {
				t.Fatalf("%s ends without a newline: %q", path, line)
			}
			return recs
		}
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, parseRecord(t, line))
	}
}

func parseRecord(t testing.TB, line []byte) record {
	t.Helper()
	ts, stream, partial, content, err := ParseLogLine(line)
	if err != nil {
		t.Fatalf("parsing %q: %v", line, err)
	}
	if !ts.Equal(fixedNow) {
		t.Fatalf("timestamp %v, want %v", ts, fixedNow)
	}
	return record{stream, partial, string(content)}
}

// joinStream rebuilds what a stream's container printed from its records.
func joinStream(recs []record, stream string) string {
	var b strings.Builder
	for _, r := range recs {
		if r.stream != stream {
			continue
		}
		b.WriteString(r.content)
		if !r.partial {
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// pattern is n bytes that differ along the line, so that a piece cut at
// the wrong place shows.
func pattern(n int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[(i/7+i)%len(alphabet)]
	}
	return string(b)
}

func TestCopyRecords(t *testing.T) {
	long := pattern(40000)
	full, partial := func(s string) record { return record{"stdout", false, s} }, func(s string) record { return record{"stdout", true, s} }
	tests := []struct {
		name  string
		input string
		want  []record
	}{
		{"nothing", "", nil},
		{"short lines", "hello\nworld\n", []record{full("hello"), full("world")}},
		{"empty lines", "\n\na\n\n", []record{full(""), full(""), full("a"), full("")}},
		{"exactly 16384", long[:16384] + "\n", []record{full(long[:16384])}},
		{"16385", long[:16385] + "\n", []record{partial(long[:16384]), full(long[16384:16385])}},
		{"40000", long + "\nnext\n", []record{partial(long[:16384]), partial(long[16384:32768]), full(long[32768:]), full("next")}},
		{"32768 is two pieces and no empty F", long[:32768] + "\n", []record{partial(long[:16384]), full(long[16384:32768])}},
		{"CRLF left as content", "dos\r\nline\r\n", []record{full("dos\r"), full("line\r")}},
		{"lone CR", "a\rb\n", []record{full("a\rb")}},
		{"no trailing newline", "one\ntwo", []record{full("one"), partial("two")}},
		{"long line without newline", long[:20000], []record{partial(long[:16384]), partial(long[16384:20000])}},
		{"exactly 16384 without newline", long[:16384], []record{partial(long[:16384])}},
		{"NUL and spaces", "a \x00 b  \n", []record{full("a \x00 b  ")}},
	}
	readers := map[string]func(string) io.Reader{
		"whole":   func(s string) io.Reader { return strings.NewReader(s) },
		"bytes":   func(s string) io.Reader { return iotest.OneByteReader(strings.NewReader(s)) },
		"halves":  func(s string) io.Reader { return iotest.HalfReader(strings.NewReader(s)) },
		"dataEOF": func(s string) io.Reader { return iotest.DataErrReader(strings.NewReader(s)) },
	}
	for _, tt := range tests {
		for rname, reader := range readers {
			t.Run(tt.name+"/"+rname, func(t *testing.T) {
				path := filepath.Join(t.TempDir(), "c.log")
				w := newTestWriter(t, path)
				if err := w.Copy("stdout", reader(tt.input)); err != nil {
					t.Fatal(err)
				}
				got := readRecords(t, path)
				if fmt.Sprint(got) != fmt.Sprint(tt.want) || !sameRecords(got, tt.want) {
					t.Errorf("got %v\nwant %v", got, tt.want)
				}
			})
		}
	}
}

func sameRecords(a, b []record) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// The bytes of a record, pinned: kubelet parses exactly this.
func TestRecordBytes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "dir", "c.log")
	w := newTestWriter(t, path)
	w.now = func() time.Time { return time.Date(2024, 1, 2, 4, 4, 5, 120000000, time.FixedZone("CET", 3600)) }
	if err := w.Copy("stderr", strings.NewReader("x y\n\nend")); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := "2024-01-02T03:04:05.12Z stderr F x y\n" +
		"2024-01-02T03:04:05.12Z stderr F \n" +
		"2024-01-02T03:04:05.12Z stderr P end\n"
	if string(got) != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm&^0o640 != 0 {
		t.Errorf("log file mode %v, want at most 0640", perm)
	}
}

func TestCopyRejectsUnknownStream(t *testing.T) {
	w := newTestWriter(t, filepath.Join(t.TempDir(), "c.log"))
	if err := w.Copy("stdin", strings.NewReader("x\n")); err == nil {
		t.Error("Copy accepted stream stdin")
	}
}

// writeChunks writes s to wr in pieces of random size, so that lines
// straddle reads, then closes wr.
func writeChunks(t testing.TB, wr io.WriteCloser, s string, seed uint64) {
	rnd := rand.New(rand.NewPCG(seed, seed))
	for len(s) > 0 {
		n := min(len(s), 1+rnd.IntN(9000))
		if _, err := io.WriteString(wr, s[:n]); err != nil {
			t.Error(err)
			break
		}
		s = s[n:]
	}
	wr.Close()
}

// streamText is many lines of one stream, some longer than a record.
func streamText(name string, lines int) string {
	var b strings.Builder
	for i := range lines {
		fmt.Fprintf(&b, "%s line %d %s\n", name, i, pattern(i%50))
		if i%97 == 0 {
			b.WriteString(name + pattern(MaxLogLine+i) + "\n")
		}
	}
	return b.String()
}

// copyBoth runs both streams of a container through w, as the shim does:
// each from a pipe, by its own goroutine, fed in random chunks.
func copyBoth(t *testing.T, w *LogWriter, out, errs string) {
	t.Helper()
	var wg sync.WaitGroup
	for i, s := range []struct{ stream, text string }{{"stdout", out}, {"stderr", errs}} {
		r, wr, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(2)
		go func() {
			defer wg.Done()
			writeChunks(t, wr, s.text, uint64(i+1))
		}()
		go func() {
			defer wg.Done()
			defer r.Close()
			if err := w.Copy(s.stream, r); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
}

func TestCopyBothStreamsConcurrently(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.log")
	w := newTestWriter(t, path)
	out, errs := streamText("out", 3000), streamText("err", 3000)
	copyBoth(t, w, out, errs)

	// Every line parses and each stream joins back whole: a record torn or
	// interleaved with the other stream's would break one or the other.
	recs := readRecords(t, path)
	if got := joinStream(recs, "stdout"); got != out {
		t.Errorf("stdout differs: %d bytes, want %d", len(got), len(out))
	}
	if got := joinStream(recs, "stderr"); got != errs {
		t.Errorf("stderr differs: %d bytes, want %d", len(got), len(errs))
	}
}

// Rotation while both streams are being copied: kubelet renames the file,
// then reopens. Nothing is lost or torn, and each file holds whole records.
func TestReopenWhileCopying(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.log")
	w := newTestWriter(t, path)
	out, errs := streamText("out", 2000), streamText("err", 2000)

	done := make(chan struct{})
	rotated := make(chan []string)
	go func() {
		var files []string
		defer func() { rotated <- files }()
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			case <-time.After(100 * time.Microsecond):
			}
			old := fmt.Sprintf("%s.%04d", path, i)
			if err := os.Rename(path, old); err != nil {
				t.Error(err)
				return
			}
			files = append(files, old)
			if err := w.Reopen(); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	copyBoth(t, w, out, errs)
	close(done)
	files := append(<-rotated, path)

	var recs []record
	for _, f := range files {
		recs = append(recs, readRecords(t, f)...)
	}
	t.Logf("%d rotations during the copy", len(files)-1)
	if joinStream(recs, "stdout") != out || joinStream(recs, "stderr") != errs {
		t.Error("output differs after rotations")
	}
}

func TestReopenAfterRename(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.log")
	w := newTestWriter(t, path)
	if err := w.Copy("stdout", strings.NewReader("old 1\nold 2\n")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if err := w.Copy("stderr", strings.NewReader("still old\n")); err != nil {
		t.Fatal(err)
	}
	if err := w.Reopen(); err != nil {
		t.Fatal(err)
	}
	if err := w.Copy("stdout", strings.NewReader("new\n")); err != nil {
		t.Fatal(err)
	}
	wantOld := []record{{"stdout", false, "old 1"}, {"stdout", false, "old 2"}, {"stderr", false, "still old"}}
	if got := readRecords(t, path+".1"); !sameRecords(got, wantOld) {
		t.Errorf("rotated file: %v, want %v", got, wantOld)
	}
	if got := readRecords(t, path); !sameRecords(got, []record{{"stdout", false, "new"}}) {
		t.Errorf("new file: %v", got)
	}
}

// When the new file cannot be opened, kubelet renames the old one back:
// output must keep going to it.
func TestReopenFailureKeepsOldFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.log")
	w := newTestWriter(t, path)
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(path, 0o755); err != nil { // makes the open fail
		t.Fatal(err)
	}
	if err := w.Reopen(); err == nil {
		t.Fatal("Reopen onto a directory succeeded")
	}
	if err := w.Copy("stdout", strings.NewReader("kept\n")); err != nil {
		t.Fatal(err)
	}
	if got := readRecords(t, path+".1"); !sameRecords(got, []record{{"stdout", false, "kept"}}) {
		t.Errorf("old file: %v", got)
	}
	if w.Dropped() != 0 {
		t.Errorf("%d records dropped", w.Dropped())
	}
}

func TestEmptyPathDiscards(t *testing.T) {
	w := newTestWriter(t, "")
	in := strings.NewReader(streamText("out", 500))
	if err := w.Copy("stdout", in); err != nil {
		t.Fatal(err)
	}
	if in.Len() != 0 {
		t.Errorf("%d bytes left unread", in.Len())
	}
	if err := w.Reopen(); err != nil {
		t.Errorf("Reopen: %v", err)
	}
	if w.Dropped() != 0 {
		t.Errorf("discarded output counted as dropped: %d", w.Dropped())
	}
}

// A full disk must not stop the pipe from being drained.
func TestWriteErrorsKeepDraining(t *testing.T) {
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skip("no /dev/full:", err)
	}
	w := newTestWriter(t, "/dev/full")
	in := strings.NewReader("a\nb\nc")
	if err := w.Copy("stdout", in); err != nil {
		t.Fatal(err)
	}
	if in.Len() != 0 {
		t.Errorf("%d bytes left unread", in.Len())
	}
	if w.Dropped() != 3 {
		t.Errorf("Dropped() = %d, want 3", w.Dropped())
	}
}

func TestCloseThenCopyDrops(t *testing.T) {
	w := newTestWriter(t, filepath.Join(t.TempDir(), "c.log"))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := w.Copy("stdout", strings.NewReader("late\n")); err != nil {
		t.Fatal(err)
	}
	if w.Dropped() != 1 {
		t.Errorf("Dropped() = %d, want 1", w.Dropped())
	}
	if err := w.Reopen(); err == nil {
		t.Error("Reopen after Close succeeded")
	}
}

func TestCopyReturnsReadError(t *testing.T) {
	w := newTestWriter(t, filepath.Join(t.TempDir(), "c.log"))
	boom := fmt.Errorf("boom")
	if err := w.Copy("stdout", iotest.ErrReader(boom)); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Errorf("Copy = %v, want the read error", err)
	}
}

func TestParseLogLine(t *testing.T) {
	tests := []struct {
		line    string
		want    record
		wantErr bool
	}{
		{line: "2024-01-02T03:04:05.123456789Z stdout F hello world\n", want: record{"stdout", false, "hello world"}},
		{line: "2024-01-02T03:04:05.123456789Z stderr P part", want: record{"stderr", true, "part"}},
		{line: "2024-01-02T03:04:05.123456789Z stdout F \n", want: record{"stdout", false, ""}},
		{line: "2024-01-02T04:04:05.123456789+01:00 stdout F tz\n", want: record{"stdout", false, "tz"}},
		{line: "2024-01-02T03:04:05.123456789Z stdout P:future:tags x\n", want: record{"stdout", true, "x"}},
		{line: "2024-01-02T03:04:05.123456789Z stdout F  lead space\r\n", want: record{"stdout", false, " lead space\r"}},
		{line: "", wantErr: true},
		{line: "garbage\n", wantErr: true},
		{line: "2024-01-02 stdout F x\n", wantErr: true},
		{line: "2024-01-02T03:04:05.123456789Z stdin F x\n", wantErr: true},
		{line: "2024-01-02T03:04:05.123456789Z stdout X x\n", wantErr: true},
		{line: "2024-01-02T03:04:05.123456789Z stdout F\n", wantErr: true},
		{line: "2024-01-02T03:04:05.123456789Z stdout\n", wantErr: true},
	}
	for _, tt := range tests {
		ts, stream, partial, content, err := ParseLogLine([]byte(tt.line))
		if tt.wantErr {
			if err == nil {
				t.Errorf("%q: no error", tt.line)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tt.line, err)
			continue
		}
		if got := (record{stream, partial, string(content)}); got != tt.want || !ts.Equal(fixedNow) {
			t.Errorf("%q: %v at %v, want %v at %v", tt.line, got, ts, tt.want, fixedNow)
		}
	}
}

// chunkReader returns its data in reads of the sizes it cycles through.
type chunkReader struct {
	data  []byte
	sizes []byte
	i     int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := len(p)
	if len(r.sizes) > 0 {
		n = min(n, int(r.sizes[r.i%len(r.sizes)])+1)
		r.i++
	}
	n = copy(p, r.data[:min(n, len(r.data))])
	r.data = r.data[n:]
	return n, nil
}

// Whatever a container prints, its records join back into exactly what it
// printed, and none is longer than the limit or torn.
func FuzzCopy(f *testing.F) {
	f.Add([]byte("hello\nworld\n"), uint8(0), []byte{})
	f.Add([]byte("a\r\nb\n\n\nno newline"), uint8(3), []byte{0, 1, 2})
	f.Add([]byte(pattern(100)+"\n"+pattern(7)), uint8(9), []byte{5})
	f.Add([]byte("exact\n"), uint8(4), []byte{255})
	f.Fuzz(func(t *testing.T, data []byte, limit uint8, sizes []byte) {
		path := filepath.Join(t.TempDir(), "c.log")
		w := newTestWriter(t, path)
		if limit > 0 {
			w.maxLine = int(limit)
		}
		if err := w.Copy("stdout", &chunkReader{data: data, sizes: sizes}); err != nil {
			t.Fatal(err)
		}
		recs := readRecords(t, path)
		if got := joinStream(recs, "stdout"); got != string(data) {
			t.Fatalf("joined records %q, want %q", got, data)
		}
		for i, r := range recs {
			last := i == len(recs)-1
			switch {
			case strings.Contains(r.content, "\n"):
				t.Fatalf("record %d holds a newline: %v", i, r)
			case len(r.content) > w.maxLine:
				t.Fatalf("record %d is longer than %d: %v", i, w.maxLine, r)
			case r.partial && !last && len(r.content) != w.maxLine:
				t.Fatalf("record %d is a short P piece before the end: %v", i, r)
			case r.partial && r.content == "":
				t.Fatalf("record %d is an empty P piece", i)
			}
		}
	})
}

// The shim pays per pod: copying must not allocate per line.
func TestCopyDoesNotAllocatePerLine(t *testing.T) {
	w := newTestWriter(t, filepath.Join(t.TempDir(), "c.log"))
	text := []byte(streamText("out", 2000))
	r := bytes.NewReader(text)
	allocs := testing.AllocsPerRun(5, func() {
		r.Reset(text)
		if err := w.Copy("stdout", r); err != nil {
			t.Fatal(err)
		}
	})
	t.Logf("%v allocations per copy of 2000 lines", allocs)
	if allocs > 20 {
		t.Errorf("%v allocations to copy 2000 lines", allocs)
	}
}

// The shim's log counts (for huskd's metrics) are the records and bytes
// that reached the files, summed over its containers' logs; a record that
// could not be written is not counted.
func TestLogCounts(t *testing.T) {
	dir := t.TempDir()
	var counts logCounts
	a, b := newTestWriter(t, filepath.Join(dir, "a.log")), newTestWriter(t, filepath.Join(dir, "b.log"))
	a.counts, b.counts = &counts, &counts
	if err := a.Copy(StreamStdout, strings.NewReader("one\ntwo\nthree")); err != nil {
		t.Fatal(err)
	}
	if err := b.Copy(StreamStderr, strings.NewReader("four\n")); err != nil {
		t.Fatal(err)
	}
	sa, _ := os.Stat(filepath.Join(dir, "a.log"))
	sb, _ := os.Stat(filepath.Join(dir, "b.log"))
	want := shimapi.LogCounts{Lines: 4, Bytes: uint64(sa.Size() + sb.Size())}
	if got := counts.read(); got != want {
		t.Errorf("counts %+v, want %+v", got, want)
	}
	b.Close()
	if err := b.Copy(StreamStdout, strings.NewReader("dropped\n")); err != nil {
		t.Fatal(err)
	}
	if got := counts.read(); got != want {
		t.Errorf("after a dropped record: %+v, want %+v", got, want)
	}
}
