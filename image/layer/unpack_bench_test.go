package layer

import (
	"archive/tar"
	"bytes"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkUnpack unpacks a layer of 2000 files of 16 KiB in 20
// directories, the shape of the pull benchmark's layers.
func BenchmarkUnpack(b *testing.B) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	rng := rand.New(rand.NewSource(1))
	body := make([]byte, 16<<10)
	for i := 0; i < 2000; i++ {
		if i%100 == 0 {
			_ = tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("data/%03d/", i/100), Typeflag: tar.TypeDir, Mode: 0o755, ModTime: time.Unix(1, 0)})
		}
		rng.Read(body)
		_ = tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("data/%03d/file%04d", i/100, i), Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body)), ModTime: time.Unix(1, 0)})
		_, _ = tw.Write(body)
	}
	_ = tw.Close()
	data := buf.Bytes()
	b.SetBytes(int64(len(data)))
	for i := 0; i < b.N; i++ {
		dir := filepath.Join(b.TempDir(), "l")
		_ = os.Mkdir(dir, 0o755)
		if _, err := Unpack(bytes.NewReader(data), dir, Limits{}); err != nil {
			b.Fatal(err)
		}
	}
}
