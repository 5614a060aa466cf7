package hosts

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestLookup(t *testing.T) {
	dir := t.TempDir()
	write := func(host, body string) {
		t.Helper()
		d := filepath.Join(dir, host)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if body != "" {
			if err := os.WriteFile(filepath.Join(d, "hosts.toml"), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	write("registry.k8s.io", `
server = "https://registry.k8s.io"

[host."http://127.0.0.1:5000"]
  capabilities = ["pull", "resolve"]

[host."https://mirror.example:8443"]
  capabilities = ["pull"]
  skip_verify = true
  ca = ["ca1.crt", "/etc/ssl/ca2.crt"]
  client = [["client.cert", "client.key"]]
  [host."https://mirror.example:8443".header]
    x-team = "infra"
    x-multi = ["a", "b"]
`)
	write("_default", `[host."http://127.0.0.1:6000"]
capabilities = ["pull", "resolve"]
`)
	write("certs.only:5000", "")
	_ = os.WriteFile(filepath.Join(dir, "certs.only:5000", "ca.crt"), nil, 0o644)
	write("bad", `[host."ftp://x"]`)
	write("typo", "sever = \"https://x\"\n")

	cases := []struct {
		registry string
		want     []string // String() of each host, in order
		check    func(t *testing.T, hs []Host)
		err      string
	}{
		{registry: "registry.k8s.io", want: []string{"http://127.0.0.1:5000", "https://mirror.example:8443", "https://registry.k8s.io"},
			check: func(t *testing.T, hs []Host) {
				if !hs[0].Can(Pull|Resolve) || hs[0].Can(Push) || !hs[0].Insecure() {
					t.Errorf("first host %+v", hs[0])
				}
				m := hs[1]
				if m.Can(Resolve) || !m.SkipVerify || m.Header.Get("x-team") != "infra" || !reflect.DeepEqual(m.Header.Values("x-multi"), []string{"a", "b"}) {
					t.Errorf("mirror %+v", m)
				}
				if !reflect.DeepEqual(m.CAs, []string{filepath.Join(dir, "registry.k8s.io", "ca1.crt"), "/etc/ssl/ca2.crt"}) {
					t.Errorf("CAs %v", m.CAs)
				}
				if !reflect.DeepEqual(m.Clients, [][2]string{{filepath.Join(dir, "registry.k8s.io", "client.cert"), filepath.Join(dir, "registry.k8s.io", "client.key")}}) {
					t.Errorf("clients %v", m.Clients)
				}
				if !hs[2].Can(Pull | Resolve | Push) {
					t.Errorf("server caps %v", hs[2].Capabilities)
				}
				if hs[0].Server || hs[1].Server || !hs[2].Server {
					t.Errorf("only the server is the registry itself: %v %v %v", hs[0].Server, hs[1].Server, hs[2].Server)
				}
			}},
		{registry: "quay.io", want: []string{"http://127.0.0.1:6000", "https://quay.io"}},
		{registry: "docker.io", want: []string{"http://127.0.0.1:6000", "https://registry-1.docker.io"}},
		{registry: "certs.only:5000", want: []string{"https://certs.only:5000"}, check: func(t *testing.T, hs []Host) {
			if len(hs[0].CAs) != 1 {
				t.Errorf("docker-style CA not found: %v", hs[0].CAs)
			}
		}},
		{registry: "bad", err: "scheme"},
		{registry: "typo", err: "sever"},
	}
	for _, c := range cases {
		t.Run(c.registry, func(t *testing.T) {
			hs, err := Lookup(dir, c.registry)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err = %v, want one about %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, h := range hs {
				got = append(got, h.String())
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("hosts %v, want %v", got, c.want)
			}
			if c.check != nil {
				c.check(t, hs)
			}
		})
	}
	if hs, _ := Lookup("", "docker.io"); len(hs) != 1 || hs[0].String() != "https://registry-1.docker.io" {
		t.Errorf("no config dir: %v", hs)
	}
}

// parse keeps the file's host order whatever TOML form names a host, never
// takes a host from text that only looks like a table, and refuses
// addresses that are not scheme://host[:port].
func TestParse(t *testing.T) {
	def := Host{Scheme: "https", Host: "registry.example", Capabilities: Pull | Resolve | Push, Server: true}
	cases := []struct {
		name, toml string
		want       []string
		err        string
	}{
		{name: "header order", toml: "[host.\"http://b:1\"]\n[host.\"http://a:1\"]\n", want: []string{"http://b:1", "http://a:1", "https://registry.example"}},
		{name: "single quotes", toml: "[host.'http://b:1']\n[host.\"http://a:1\"]\n", want: []string{"http://b:1", "http://a:1", "https://registry.example"}},
		{name: "dotted keys", toml: "host.\"http://b:1\".capabilities = [\"pull\"]\nhost.\"http://a:1\".capabilities = [\"pull\"]\n", want: []string{"http://b:1", "http://a:1", "https://registry.example"}},
		{name: "inline", toml: "host = { \"http://b:1\" = {}, \"http://a:1\" = {} }\n", want: []string{"http://b:1", "http://a:1", "https://registry.example"}},
		{name: "host table", toml: "[host]\n\"http://b:1\" = {}\n[host.\"http://a:1\"]\n", want: []string{"http://b:1", "http://a:1", "https://registry.example"}},
		{name: "looks like a table in a string", toml: "server = \"https://s\"\n[host.\"http://a:1\"]\n[host.\"http://a:1\".header]\nx = '''\n[host.\"http://evil:1\"]\n'''\n", want: []string{"http://a:1", "https://s"}},
		{name: "no host", toml: "server = \"http://\"\n", err: "want a DNS name"},
		{name: "user", toml: "server = \"https://u:p@s\"\n", err: "no user"},
		{name: "query", toml: "[host.\"https://s?x=1\"]\n", err: "no user, query"},
		{name: "port", toml: "[host.\"https://s:99999\"]\n", err: "not a TCP port"},
		{name: "empty port", toml: "[host.\"https://s:\"]\n", err: "not a TCP port"},
		{name: "space", toml: "[host.\"https://a b\"]\n", err: "host"},
		{name: "ipv6", toml: "[host.\"http://[::1]:5000\"]\n", want: []string{"http://[::1]:5000", "https://registry.example"}},
		{name: "allow http credentials", toml: "[host.\"http://m:1\"]\nallow_credentials_over_http = true\n", want: []string{"http://m:1", "https://registry.example"}},
		{name: "allow on https", toml: "[host.\"https://m:1\"]\nallow_credentials_over_http = true\n", err: "not an http:// host"},
		{name: "allow on the default server", toml: "allow_credentials_over_http = true\n", err: "not an http:// host"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			hs, err := parse([]byte(c.toml), "/etc/husk/certs.d/x", def)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err = %v, want one about %q (hosts %v)", err, c.err, hs)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, h := range hs {
				got = append(got, h.String())
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("hosts %v, want %v", got, c.want)
			}
		})
	}
	hs, err := parse([]byte("server = \"http://s:5000\"\nallow_credentials_over_http = true\n[host.\"http://m:1\"]\n"), "/", def)
	if err != nil || hs[0].AllowCredentialsOverHTTP || !hs[1].AllowCredentialsOverHTTP {
		t.Errorf("allow_credentials_over_http at the top level is the server's alone: %+v, %v", hs, err)
	}
}
