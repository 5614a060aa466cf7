package main

import (
	"os"
	"path/filepath"
	"testing"
)

// makeDirs makes huskd's directories with their modes, and gives these
// modes to directories an older huskd made 0711 or 0755.
func TestMakeDirs(t *testing.T) {
	for _, older := range []os.FileMode{0, 0o711, 0o755} {
		t.Run(older.String(), func(t *testing.T) {
			dir := t.TempDir()
			root, state := filepath.Join(dir, "root"), filepath.Join(dir, "state")
			if older != 0 {
				for _, d := range dirModes(root, state) {
					if err := os.MkdirAll(d.path, 0o755); err != nil {
						t.Fatal(err)
					}
					if err := os.Chmod(d.path, older); err != nil {
						t.Fatal(err)
					}
				}
			}
			if err := makeDirs(root, state); err != nil {
				t.Fatal(err)
			}
			for _, d := range dirModes(root, state) {
				fi, err := os.Stat(d.path)
				if err != nil {
					t.Fatal(err)
				}
				if fi.Mode() != os.ModeDir|d.mode {
					t.Errorf("%s: %v, want %v", d.path, fi.Mode(), os.ModeDir|d.mode)
				}
			}
		})
	}
}
