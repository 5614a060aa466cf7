// Package hosts reads registry host configuration in containerd's
// hosts.toml format, so that admins reuse the files they already have:
//
//	<config_path>/<registry host[:port]>/hosts.toml   (or _default/hosts.toml)
//
//	server = "https://registry.k8s.io"
//	[host."http://127.0.0.1:5000"]
//	  capabilities = ["pull", "resolve"]
//	  skip_verify = true
//	  ca = "/etc/husk/certs.d/registry.k8s.io/ca.crt"
//	  [host."http://127.0.0.1:5000".header]
//	    x-team = "infra"
//	[host."http://10.0.0.7:5000"]
//	  allow_credentials_over_http = true
//
// Hosts are tried in the order the file lists them, then the server. A
// mirror serves the same repository paths as the registry it stands for.
//
// Credentials from a pull request go only to the host they are for (see
// image.Auth), and never over plain HTTP unless that host's table says
// allow_credentials_over_http = true. The key is husk's own: neither
// containerd's hosts.toml nor CRI-O's registries.conf has one (containerd
// sends credentials to any host they match, over HTTP too). It is allowed
// only on an http:// host, or at the top level when the server is one, and
// covers that host:port alone: a token realm or redirect on another host
// over HTTP gets nothing.
package hosts

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"
)

// Capability is what a host may be asked for.
type Capability uint8

const (
	Pull    Capability = 1 << iota // fetch content by digest
	Resolve                        // turn a tag into a digest
	Push
)

// Host is one endpoint to try for a registry.
type Host struct {
	// Scheme and Host ("127.0.0.1:5000") of the endpoint.
	Scheme, Host string
	Capabilities Capability
	SkipVerify   bool
	CAs          []string    // PEM files
	Clients      [][2]string // certificate and key files
	Header       http.Header
	// AllowCredentialsOverHTTP lets credentials travel to this http://
	// host in the clear (allow_credentials_over_http).
	AllowCredentialsOverHTTP bool
	// Server marks the registry itself (the file's server, or the
	// default), as opposed to a mirror.
	Server bool
}

// Can says whether the host has every capability in c.
func (h Host) Can(c Capability) bool { return h.Capabilities&c == c }

// Insecure says whether the endpoint speaks plain HTTP.
func (h Host) Insecure() bool { return h.Scheme == "http" }

func (h Host) String() string { return h.Scheme + "://" + h.Host }

// DefaultServer is where a registry lives when no file says otherwise.
func DefaultServer(registry string) string {
	if registry == "docker.io" {
		return "registry-1.docker.io"
	}
	return registry
}

// Lookup returns the hosts to try for registry (host[:port]), in order,
// from dir/<registry>/hosts.toml, else dir/_default/hosts.toml, else the
// registry itself over HTTPS. A host directory without hosts.toml may
// still hold Docker-style certificates (*.crt, *.cert + *.key) for it.
// An empty dir means no configuration.
func Lookup(dir, registry string) ([]Host, error) {
	def := Host{Scheme: "https", Host: DefaultServer(registry), Capabilities: Pull | Resolve | Push, Server: true}
	if dir == "" {
		return []Host{def}, nil
	}
	for _, name := range []string{hostDirName(registry), "_default"} {
		hostDir := filepath.Join(dir, name)
		b, err := os.ReadFile(filepath.Join(hostDir, "hosts.toml"))
		if err == nil {
			hosts, err := parse(b, hostDir, def)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", filepath.Join(hostDir, "hosts.toml"), err)
			}
			return hosts, nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		if name != "_default" {
			if st, err := os.Stat(hostDir); err == nil && st.IsDir() {
				return []Host{dockerCerts(hostDir, def)}, nil
			}
		}
	}
	return []Host{def}, nil
}

// hostDirName is the directory name for a registry: containerd's, with
// the port kept ("127.0.0.1:5000").
func hostDirName(registry string) string { return registry }

// file is hosts.toml; host tables are read separately to keep their order.
type file struct {
	Server string `toml:"server"`
	hostFields
	Host map[string]hostFields `toml:"host"`
}

type hostFields struct {
	Capabilities             []string       `toml:"capabilities"`
	AllowCredentialsOverHTTP *bool          `toml:"allow_credentials_over_http"`
	SkipVerify               *bool          `toml:"skip_verify"`
	CA                       any            `toml:"ca"`     // string or list
	Client                   any            `toml:"client"` // string, [cert, key], or a list of those
	Header                   map[string]any `toml:"header"` // string or list values
	OverridePath             bool           `toml:"override_path"`
}

func parse(b []byte, baseDir string, def Host) ([]Host, error) {
	var f file
	dec := toml.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		var sm *toml.StrictMissingError
		if errors.As(err, &sm) {
			return nil, errors.New(sm.String())
		}
		return nil, err
	}
	order, err := hostOrder(b)
	if err != nil {
		return nil, err
	}
	if len(order) != len(f.Host) {
		// hostOrder and the decoder disagree: better no answer than a
		// mirror silently dropped or tried out of order.
		return nil, fmt.Errorf("could not tell the order of the host tables (found %d of %d)", len(order), len(f.Host))
	}
	var out []Host
	for _, name := range order {
		hf, ok := f.Host[name]
		if !ok {
			return nil, fmt.Errorf("could not tell the order of the host tables (%q)", name)
		}
		h, err := makeHost(name, hf, baseDir)
		if err != nil {
			return nil, fmt.Errorf("host %q: %w", name, err)
		}
		out = append(out, h)
	}
	server := def
	if f.Server != "" {
		if server, err = makeHost(f.Server, f.hostFields, baseDir); err != nil {
			return nil, fmt.Errorf("server %q: %w", f.Server, err)
		}
		server.Server = true
	} else if err := applyFields(&server, f.hostFields, baseDir); err != nil {
		return nil, err
	}
	return append(out, server), nil
}

// hostOrder returns the names of the [host."..."] tables in the order the
// file first mentions them, whichever TOML form names them (a table
// header, dotted keys, an inline table): the decoder's map loses it, and
// the order is the order hosts are tried in.
func hostOrder(b []byte) ([]string, error) {
	var p unstable.Parser
	p.Reset(b)
	var order []string
	seen := map[string]bool{}
	add := func(name string) {
		if !seen[name] {
			seen[name] = true
			order = append(order, name)
		}
	}
	keyOf := func(it unstable.Iterator) []string {
		var k []string
		for it.Next() {
			k = append(k, string(it.Node().Data))
		}
		return k
	}
	var table []string
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.Table, unstable.ArrayTable:
			table = keyOf(e.Key())
			if len(table) >= 2 && table[0] == "host" {
				add(table[1])
			}
		case unstable.KeyValue:
			key := append(append([]string(nil), table...), keyOf(e.Key())...)
			if len(key) == 0 || key[0] != "host" {
				continue
			}
			if len(key) >= 2 {
				add(key[1])
				continue
			}
			// host = { "http://..." = { ... }, ... }
			if v := e.Value(); v.Kind == unstable.InlineTable {
				it := v.Children()
				for it.Next() {
					if kv := it.Node(); kv.Kind == unstable.KeyValue {
						if k := keyOf(kv.Key()); len(k) > 0 {
							add(k[0])
						}
					}
				}
			}
		}
	}
	if err := p.Error(); err != nil {
		return nil, err
	}
	return order, nil
}

func makeHost(raw string, hf hostFields, baseDir string) (Host, error) {
	if !strings.Contains(raw, "://") {
		raw = "https://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		return Host{}, err
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return Host{}, fmt.Errorf("scheme %q: want http or https", u.Scheme)
	}
	if err := checkHostPort(u.Host); err != nil {
		return Host{}, err
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return Host{}, errors.New("want scheme://host[:port] with no user, query or fragment")
	}
	if p := strings.TrimSuffix(u.Path, "/"); p != "" && p != "/v2" {
		return Host{}, fmt.Errorf("path %q: husk serves mirrors at the registry root (/v2) only", u.Path)
	}
	h := Host{Scheme: u.Scheme, Host: u.Host, Capabilities: Pull | Resolve | Push}
	return h, applyFields(&h, hf, baseDir)
}

// checkHostPort accepts what a registry address may be: a DNS name or an
// IP literal ([...] for IPv6), with an optional port.
func checkHostPort(hp string) error {
	host, port := hp, ""
	if i := strings.LastIndexByte(hp, ':'); i >= 0 && !strings.HasSuffix(hp, "]") {
		host, port = hp[:i], hp[i+1:]
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || port[0] == '0' {
			return fmt.Errorf("host %q: port %q is not a TCP port", hp, port)
		}
	}
	if v6, ok := strings.CutPrefix(host, "["); ok {
		addr, err := netip.ParseAddr(strings.TrimSuffix(v6, "]"))
		if err != nil || !strings.HasSuffix(v6, "]") || !addr.Is6() {
			return fmt.Errorf("host %q: not an IPv6 address in brackets", hp)
		}
		return nil
	}
	if !hostName.MatchString(host) {
		return fmt.Errorf("host %q: want a DNS name or an IP address", hp)
	}
	return nil
}

var hostName = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$`)

func applyFields(h *Host, hf hostFields, baseDir string) error {
	if hf.AllowCredentialsOverHTTP != nil && *hf.AllowCredentialsOverHTTP {
		if h.Scheme != "http" {
			return fmt.Errorf("allow_credentials_over_http: %s is not an http:// host", h)
		}
		h.AllowCredentialsOverHTTP = true
	}
	if hf.OverridePath {
		return errors.New("override_path is not supported")
	}
	if hf.Capabilities != nil {
		h.Capabilities = 0
		for _, c := range hf.Capabilities {
			switch c {
			case "pull":
				h.Capabilities |= Pull
			case "resolve":
				h.Capabilities |= Resolve
			case "push":
				h.Capabilities |= Push
			default:
				return fmt.Errorf("unknown capability %q", c)
			}
		}
	}
	if hf.SkipVerify != nil {
		h.SkipVerify = *hf.SkipVerify
	}
	cas, err := strings1(hf.CA)
	if err != nil {
		return fmt.Errorf("ca: %w", err)
	}
	for _, ca := range cas {
		h.CAs = append(h.CAs, abs(baseDir, ca))
	}
	switch c := hf.Client.(type) {
	case nil:
	case string:
		h.Clients = append(h.Clients, [2]string{abs(baseDir, c), ""})
	case []any:
		pair := func(v any) error {
			switch p := v.(type) {
			case string:
				h.Clients = append(h.Clients, [2]string{abs(baseDir, p), ""})
			case []any:
				if len(p) != 2 {
					return errors.New("client: want [certificate, key]")
				}
				cert, ok1 := p[0].(string)
				key, ok2 := p[1].(string)
				if !ok1 || !ok2 {
					return errors.New("client: want [certificate, key]")
				}
				h.Clients = append(h.Clients, [2]string{abs(baseDir, cert), abs(baseDir, key)})
			default:
				return fmt.Errorf("client: unexpected %T", v)
			}
			return nil
		}
		if len(c) == 2 {
			if _, isStr := c[0].(string); isStr {
				if _, isStr := c[1].(string); isStr {
					return pair(c)
				}
			}
		}
		for _, v := range c {
			if err := pair(v); err != nil {
				return err
			}
		}
	default:
		return fmt.Errorf("client: unexpected %T", hf.Client)
	}
	for k, v := range hf.Header {
		vals, err := strings1(v)
		if err != nil {
			return fmt.Errorf("header %s: %w", k, err)
		}
		if h.Header == nil {
			h.Header = http.Header{}
		}
		for _, s := range vals {
			h.Header.Add(k, s)
		}
	}
	return nil
}

// strings1 reads a TOML value that is a string or a list of strings.
func strings1(v any) ([]string, error) {
	switch x := v.(type) {
	case nil:
		return nil, nil
	case string:
		return []string{x}, nil
	case []any:
		out := make([]string, 0, len(x))
		for _, e := range x {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("want strings, got %T", e)
			}
			out = append(out, s)
		}
		return out, nil
	}
	return nil, fmt.Errorf("want a string or a list of strings, got %T", v)
}

func abs(base, p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(base, p)
}

// dockerCerts reads Docker's certs.d layout: *.crt are CAs, a.cert with
// a.key a client certificate.
func dockerCerts(dir string, h Host) Host {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		n := e.Name()
		switch {
		case strings.HasSuffix(n, ".crt"):
			h.CAs = append(h.CAs, filepath.Join(dir, n))
		case strings.HasSuffix(n, ".cert"):
			key := filepath.Join(dir, strings.TrimSuffix(n, ".cert")+".key")
			if _, err := os.Stat(key); err == nil {
				h.Clients = append(h.Clients, [2]string{filepath.Join(dir, n), key})
			}
		}
	}
	return h
}

// Transport returns a RoundTripper for the host: base with the host's TLS
// settings, adding its headers to every request.
func (h Host) Transport(base *http.Transport) (http.RoundTripper, error) {
	t := base.Clone()
	if h.Scheme == "https" && (h.SkipVerify || len(h.CAs) > 0 || len(h.Clients) > 0) {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12}
		if t.TLSClientConfig != nil {
			cfg = t.TLSClientConfig.Clone()
		}
		cfg.InsecureSkipVerify = h.SkipVerify
		if len(h.CAs) > 0 {
			pool, err := x509.SystemCertPool()
			if err != nil || pool == nil {
				pool = x509.NewCertPool()
			}
			for _, ca := range h.CAs {
				pem, err := os.ReadFile(ca)
				if err != nil {
					return nil, fmt.Errorf("registry %s: %w", h, err)
				}
				if !pool.AppendCertsFromPEM(pem) {
					return nil, fmt.Errorf("registry %s: no certificate in %s", h, ca)
				}
			}
			cfg.RootCAs = pool
		}
		for _, c := range h.Clients {
			key := c[1]
			if key == "" {
				key = c[0]
			}
			pair, err := tls.LoadX509KeyPair(c[0], key)
			if err != nil {
				return nil, fmt.Errorf("registry %s: client certificate: %w", h, err)
			}
			cfg.Certificates = append(cfg.Certificates, pair)
		}
		t.TLSClientConfig = cfg
	}
	if len(h.Header) == 0 {
		return t, nil
	}
	return headerTransport{next: t, header: h.Header}, nil
}

type headerTransport struct {
	next   http.RoundTripper
	header http.Header
}

func (t headerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	for k, v := range t.header {
		r.Header[k] = append(r.Header[k], v...)
	}
	return t.next.RoundTrip(r)
}
