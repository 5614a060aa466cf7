package hosts

import (
	"net/url"
	"strings"
	"testing"
)

// FuzzParse feeds hosts.toml text to the reader: it never panics, and every
// host it returns is one a pull can dial (http or https, a non-empty
// host[:port] that reads back the same through net/url).
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		"server = \"https://registry.k8s.io\"\n[host.\"http://127.0.0.1:5000\"]\n  capabilities = [\"pull\", \"resolve\"]\n  skip_verify = true\n",
		"[host.'https://m:8443']\nca = [\"a.crt\"]\nclient = [[\"c.cert\", \"c.key\"]]\n[host.'https://m:8443'.header]\nx = [\"a\", \"b\"]\n",
		"host = { \"http://b:1\" = { allow_credentials_over_http = true }, \"a\" = {} }\n",
		"host.\"http://[::1]:5000\".capabilities = [\"pull\"]\n",
		"server = \"http://\"\n",
		"[host.\"https://u:p@s?q#f\"]\n",
		"x = '''\n[host.\"http://evil\"]\n'''\n",
		"[[host]]\n",
	} {
		f.Add([]byte(seed))
	}
	def := Host{Scheme: "https", Host: "registry.example", Capabilities: Pull | Resolve | Push}
	f.Fuzz(func(t *testing.T, b []byte) {
		hs, err := parse(b, "/etc/husk/certs.d/registry.example", def)
		if err != nil {
			return
		}
		if len(hs) == 0 {
			t.Fatal("no host, not even the server")
		}
		for _, h := range hs {
			if h.Scheme != "http" && h.Scheme != "https" {
				t.Fatalf("host %q: scheme %q", h, h.Scheme)
			}
			if h.Host == "" || strings.ContainsAny(h.Host, "/@?#\\ \t\r\n") {
				t.Fatalf("host %q: address %q", h, h.Host)
			}
			u, err := url.Parse(h.String() + "/v2/")
			if err != nil || u.Host != h.Host || u.Scheme != h.Scheme || u.User != nil {
				t.Fatalf("host %q does not read back: %v, %v", h, u, err)
			}
			if h.AllowCredentialsOverHTTP && h.Scheme != "http" {
				t.Fatalf("host %q allows credentials over http but is not http", h)
			}
		}
	})
}
