package image

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/huskrt/husk/image/hosts"
	"github.com/huskrt/husk/internal/errdefs"
)

// Auth is a registry credential from PullImageRequest.auth. It is never
// logged, and it goes only to the registry it is for: the one
// ServerAddress names, else the registry of the image pulled. That
// registry is the host of that name, or the server its hosts.toml gives
// (its mirrors are not the registry). A plain-HTTP host gets the
// credential only when its hosts.toml table says
// allow_credentials_over_http.
// The token service that host names in its challenge (over HTTPS, or on the
// very same host over permitted HTTP) receives it too, as with every
// registry client: that is how the host asks for it.
type Auth struct {
	Username, Password string
	// Auth is base64 "user:password", as in a docker config.json.
	Auth          string
	IdentityToken string
	RegistryToken string
	// ServerAddress is the registry the credential is for: "host[:port]",
	// or a URL of it ("https://index.docker.io/v1/"). Empty: the image's.
	ServerAddress string
}

// none says whether a carries no credential at all.
func (a Auth) none() bool {
	return a.Username == "" && a.Password == "" && a.Auth == "" && a.IdentityToken == "" && a.RegistryToken == ""
}

// key is a digest of the credential and where it is for, so that pulls
// with different credentials are told apart without the credentials being
// kept or logged; "" for no credential.
func (a Auth) key() string {
	if a.none() {
		return ""
	}
	h := sha256.New()
	for _, f := range []string{a.Username, a.Password, a.Auth, a.IdentityToken, a.RegistryToken, a.ServerAddress} {
		fmt.Fprintf(h, "%d:%s;", len(f), f)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// server returns the registry host[:port] the credential is for, lower
// case; docker.io's names all read "docker.io".
func (a Auth) server(ref Ref) (string, error) {
	s := a.ServerAddress
	if s == "" {
		return canonicalRegistry(ref.Domain()), nil
	}
	if strings.Contains(s, "://") {
		u, err := url.Parse(s)
		if err != nil || u.Host == "" {
			return "", errdefs.InvalidArgument("auth.server_address", "%q is neither host[:port] nor a URL of a registry", s)
		}
		s = u.Host
	} else {
		s, _, _ = strings.Cut(s, "/")
	}
	if s == "" || strings.ContainsAny(s, "@?# \t\r\n") {
		return "", errdefs.InvalidArgument("auth.server_address", "%q is neither host[:port] nor a URL of a registry", a.ServerAddress)
	}
	return canonicalRegistry(s), nil
}

// canonicalRegistry folds the names Docker Hub goes by, as kubelet's
// keyring and docker's config.json write them, into one.
func canonicalRegistry(host string) string {
	host = strings.ToLower(host)
	switch host {
	case "docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com":
		return "docker.io"
	}
	return host
}

// authFor returns what to authenticate to h with when pulling ref, given
// the registry the credential is for (a.server): the credential when h is
// that registry and may receive it, else anonymous with the reason the
// credential was withheld ("" when there is none to withhold).
func (a Auth) authFor(ref Ref, server string, h hosts.Host) (authn.Authenticator, string) {
	if a.none() {
		return authn.Anonymous, ""
	}
	isRegistry := h.Server && server == canonicalRegistry(ref.Domain())
	if !isRegistry && canonicalRegistry(h.Host) != server {
		return authn.Anonymous, fmt.Sprintf("no credentials sent: they are for %s", server)
	}
	if h.Scheme != "https" && !h.AllowCredentialsOverHTTP {
		return authn.Anonymous, fmt.Sprintf("no credentials sent: %s is plain HTTP and its hosts.toml does not set allow_credentials_over_http", h)
	}
	return authn.FromConfig(authn.AuthConfig{
		Username: a.Username, Password: a.Password, Auth: a.Auth,
		IdentityToken: a.IdentityToken, RegistryToken: a.RegistryToken,
	}), ""
}

// errCleartext refuses a request that would carry credentials in the
// clear.
type errCleartext struct{ host, allowed string }

func (e errCleartext) Error() string {
	if e.allowed != "" {
		return fmt.Sprintf("refusing to send credentials over plain HTTP to %s: only %s may receive them in the clear", e.host, e.allowed)
	}
	return fmt.Sprintf("refusing to send credentials over plain HTTP to %s (allow_credentials_over_http in its hosts.toml allows it)", e.host)
}

// credentialGuard is the last transport before the network of a pull that
// carries credentials. Whatever go-containerregistry decides above it (a
// scheme fallback after a failed HTTPS ping, which it makes for loopback
// and private addresses; a token realm the registry names; a redirect), a
// request with an Authorization header or a body (the OAuth2 token
// exchange posts the secret) goes over plain HTTP only to the very host
// hosts.toml allows.
type credentialGuard struct {
	next http.RoundTripper
	host hosts.Host
}

func (g credentialGuard) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Scheme != "https" && (r.Header.Get("Authorization") != "" || (r.Body != nil && r.Body != http.NoBody)) {
		allowed := ""
		if g.host.AllowCredentialsOverHTTP {
			allowed = g.host.Host
		}
		if allowed == "" || !strings.EqualFold(r.URL.Host, allowed) {
			if r.Body != nil {
				r.Body.Close()
			}
			return nil, errCleartext{host: r.URL.Host, allowed: allowed}
		}
	}
	return g.next.RoundTrip(r)
}
