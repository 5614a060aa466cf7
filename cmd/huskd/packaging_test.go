package main

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
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

// Every table and key huskd knows is shown in the packaged file, in its
// table, so that an admin finds a new one there.
func TestPackagedConfigShowsEveryKey(t *testing.T) {
	b, err := os.ReadFile("../../packaging/config.toml")
	if err != nil {
		t.Fatal(err)
	}
	// The packaged file's lines by table ("" for the top level).
	shown := map[string]string{}
	table := ""
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "#[") {
			table = line[1:]
		}
		shown[table] += line + "\n"
	}
	key := regexp.MustCompile(`^([a-z_]+) = `)
	table = ""
	for _, line := range strings.Split(defaultConfig().toml(), "\n") {
		if strings.HasPrefix(line, "[") {
			table = line
			if _, ok := shown[table]; !ok {
				t.Errorf("packaging/config.toml has no #%s", table)
			}
		} else if m := key.FindStringSubmatch(line); m != nil && !strings.Contains(shown[table], "\n#"+m[1]+" = ") {
			t.Errorf("packaging/config.toml has no #%s in %s", m[1], table)
		}
	}
}
