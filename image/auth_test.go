package image

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/huskrt/husk/image/hosts"
)

func TestAuthGoesOnlyWhereItIsFor(t *testing.T) {
	cred := Auth{Username: "u", Password: "p"}
	https := func(h string) hosts.Host { return hosts.Host{Scheme: "https", Host: h} }
	server := func(h hosts.Host) hosts.Host { h.Server = true; return h }
	http := func(h string, allow bool) hosts.Host {
		return hosts.Host{Scheme: "http", Host: h, AllowCredentialsOverHTTP: allow}
	}
	cases := []struct {
		name     string
		image    string
		auth     Auth
		host     hosts.Host
		send     bool
		withheld string
		err      string
	}{
		{"the image's registry", "registry.example/a:1", cred, https("registry.example"), true, "", ""},
		{"a mirror", "registry.example/a:1", cred, https("mirror.example"), false, "they are for registry.example", ""},
		{"Docker Hub's server", "busybox", cred, server(https("registry-1.docker.io")), true, "", ""},
		{"Docker Hub by name", "busybox", cred, https("index.docker.io"), true, "", ""},
		{"the server hosts.toml gives", "registry.example/a:1", cred, server(http("127.0.0.1:5000", true)), true, "", ""},
		{"the server, named by server_address", "registry.example/a:1", withServer(cred, "https://registry.example"), server(https("10.0.0.1")), true, "", ""},
		{"the server, server_address another", "registry.example/a:1", withServer(cred, "other.example"), server(https("10.0.0.1")), false, "they are for other.example", ""},
		{"a mirror on the server's address", "registry.example/a:1", cred, http("127.0.0.1:5000", true), false, "they are for registry.example", ""},
		{"server_address host", "registry.example/a:1", withServer(cred, "mirror.example:5000"), https("mirror.example:5000"), true, "", ""},
		{"server_address names another host", "registry.example/a:1", withServer(cred, "mirror.example:5000"), https("registry.example"), false, "they are for mirror.example:5000", ""},
		{"server_address URL", "busybox", withServer(cred, "https://index.docker.io/v1/"), https("registry-1.docker.io"), true, "", ""},
		{"server_address with a path", "registry.example/a:1", withServer(cred, "Registry.Example/v2/"), https("registry.example"), true, "", ""},
		{"server_address not a registry", "registry.example/a:1", withServer(cred, "https://"), https("registry.example"), false, "", "auth.server_address"},
		{"plain HTTP", "127.0.0.1:5000/a:1", cred, http("127.0.0.1:5000", false), false, "allow_credentials_over_http", ""},
		{"plain HTTP allowed", "127.0.0.1:5000/a:1", cred, http("127.0.0.1:5000", true), true, "", ""},
		{"plain HTTP allowed for a mirror only", "127.0.0.1:5000/a:1", cred, http("127.0.0.1:6000", true), false, "they are for 127.0.0.1:5000", ""},
		{"no credential", "registry.example/a:1", Auth{ServerAddress: "registry.example"}, https("registry.example"), false, "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ref, err := ParseRef(c.image)
			if err != nil {
				t.Fatal(err)
			}
			server, err := c.auth.server(ref)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("server() = %q, %v; want an error about %s", server, err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			a, withheld := c.auth.authFor(ref, server, c.host)
			if (a != authn.Anonymous) != c.send || !strings.Contains(withheld, c.withheld) || (c.withheld == "") != (withheld == "") {
				t.Errorf("authFor(%s) = sends %v, withheld %q; want sends %v, withheld %q", c.host, a != authn.Anonymous, withheld, c.send, c.withheld)
			}
		})
	}
}

func withServer(a Auth, s string) Auth { a.ServerAddress = s; return a }

func TestAuthKey(t *testing.T) {
	a := Auth{Username: "u", Password: "p"}
	if (Auth{}).key() != "" || (Auth{ServerAddress: "x"}).key() != "" {
		t.Error("no credential has a key")
	}
	others := []Auth{{Username: "u", Password: "q"}, {Username: "up"}, {Username: "u", Password: "p", ServerAddress: "x"}, {Auth: "dTpw"}, {RegistryToken: "u"}}
	for _, o := range others {
		if o.key() == a.key() {
			t.Errorf("%+v and %+v share a key", o, a)
		}
	}
	if k := a.key(); strings.Contains(k, "u") && strings.Contains(k, "p") && len(k) != 64 {
		t.Errorf("key %q is not a digest", k)
	}
}

type recordTransport struct{ reqs []*http.Request }

func (r *recordTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	r.reqs = append(r.reqs, req)
	return &http.Response{StatusCode: 200, Body: http.NoBody}, nil
}

func TestCredentialGuard(t *testing.T) {
	cases := []struct {
		name  string
		host  hosts.Host
		url   string
		auth  bool
		body  string
		allow bool
	}{
		{"https with credentials", hosts.Host{Scheme: "https", Host: "r"}, "https://r/v2/", true, "", true},
		{"https realm elsewhere", hosts.Host{Scheme: "https", Host: "r"}, "https://auth.example/token", true, "", true},
		{"http without credentials", hosts.Host{Scheme: "https", Host: "r"}, "http://r/v2/", false, "", true},
		{"downgrade to http", hosts.Host{Scheme: "https", Host: "r"}, "http://r/v2/", true, "", false},
		{"http not allowed", hosts.Host{Scheme: "http", Host: "r:5000"}, "http://r:5000/v2/", true, "", false},
		{"http allowed", hosts.Host{Scheme: "http", Host: "r:5000", AllowCredentialsOverHTTP: true}, "http://r:5000/v2/", true, "", true},
		{"http realm on another host", hosts.Host{Scheme: "http", Host: "r:5000", AllowCredentialsOverHTTP: true}, "http://localhost:6000/token", true, "", false},
		{"oauth post over http", hosts.Host{Scheme: "http", Host: "r:5000"}, "http://r:5000/token", false, "refresh_token=secret", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rec := &recordTransport{}
			g := credentialGuard{next: rec, host: c.host}
			var body io.Reader
			method := http.MethodGet
			if c.body != "" {
				body, method = strings.NewReader(c.body), http.MethodPost
			}
			req, _ := http.NewRequest(method, c.url, body)
			if c.auth {
				req.Header.Set("Authorization", "Basic dTpw")
			}
			_, err := g.RoundTrip(req)
			if sent := len(rec.reqs) == 1; sent != c.allow || (err == nil) != c.allow {
				t.Fatalf("sent %v, err %v; want sent %v", sent, err, c.allow)
			}
			if err != nil && !strings.Contains(err.Error(), "refusing to send credentials over plain HTTP") {
				t.Errorf("err = %v", err)
			}
		})
	}
}
