package main

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"testing"
)

// The commented config that `make install` puts in /etc/husk must show the
// real defaults: uncommented, it loads to exactly defaultConfig().
func TestPackagedConfigShowsTheDefaults(t *testing.T) {
	b, err := os.ReadFile("../../packaging/config.toml")
	if err != nil {
		t.Fatal(err)
	}
	uncommented := regexp.MustCompile(`(?m)^#([a-z_]+ = |\[)`).ReplaceAll(b, []byte("$1"))
	p := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(p, uncommented, 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := loadConfig(p, true)
	if err != nil {
		t.Fatalf("packaging/config.toml, uncommented: %v", err)
	}
	if !reflect.DeepEqual(got, defaultConfig()) {
		t.Errorf("packaging/config.toml shows %+v\nbut the defaults are %+v\nregenerate it from `huskd --print-config`", got, defaultConfig())
	}
}
