// Package stream serves kubectl exec, attach and port-forward: the CRI's
// Exec, Attach and PortForward calls return a URL on this server
// (k8s.io/cri-streaming), and the client (kubelet's proxy, crictl) then
// talks SPDY or WebSocket to it. Exec and attach are carried out by the
// pod's shim (package container); port-forward dials inside the pod's
// network namespace from huskd.
package stream

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	streaming "k8s.io/cri-streaming/pkg/streaming"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
	"k8s.io/klog/v2"

	"github.com/huskrt/husk/container"
)

// Config is the [streaming] section.
type Config struct {
	// Address and Port to listen on; port 0 picks a free one.
	Address string
	Port    int
	// TLSCertFile and TLSKeyFile, both set, serve HTTPS.
	TLSCertFile, TLSKeyFile string
	// IdleTimeout ends a session without traffic.
	IdleTimeout time.Duration
}

// Containers is what the server needs of the container manager.
type Containers interface {
	Exec(ctx context.Context, id string, cmd []string, in io.Reader, out, errOut io.WriteCloser, tty bool, resize <-chan container.TerminalSize) error
	Attach(ctx context.Context, id string, in io.Reader, out, errOut io.WriteCloser, tty bool, resize <-chan container.TerminalSize) error
}

// Pods is what the server needs of the sandbox manager: the pinned network
// namespace of a pod ("" for a host-network pod).
type Pods interface {
	NetNS(id string) (string, error)
}

// Server is the running streaming server.
type Server struct {
	streaming.Server
	listener net.Listener
	http     *http.Server
}

// Start listens and serves in the background; Close stops it.
func Start(cfg Config, ctrs Containers, pods Pods) (*Server, error) {
	addr := net.JoinHostPort(cfg.Address, strconv.Itoa(cfg.Port))
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("streaming server: listening on %s: %w", addr, err)
	}
	sc := streaming.DefaultConfig
	sc.Addr = l.Addr().String()
	if cfg.IdleTimeout > 0 {
		sc.StreamIdleTimeout = cfg.IdleTimeout
	}
	scheme := "http"
	if cfg.TLSCertFile != "" || cfg.TLSKeyFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCertFile, cfg.TLSKeyFile)
		if err != nil {
			l.Close()
			return nil, fmt.Errorf("streaming server: loading the TLS key pair: %w", err)
		}
		sc.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		scheme = "https"
	}
	// The URLs must name the port actually bound (port 0 in the config).
	sc.BaseURL = &url.URL{Scheme: scheme, Host: l.Addr().String()}
	ss, err := streaming.NewServer(sc, &adapter{ctrs: ctrs, pods: pods})
	if err != nil {
		l.Close()
		return nil, err
	}
	s := &Server{Server: ss, listener: l, http: &http.Server{Handler: ss, TLSConfig: sc.TLSConfig, ReadHeaderTimeout: 30 * time.Second}}
	go func() {
		var err error
		if sc.TLSConfig != nil {
			err = s.http.ServeTLS(l, "", "")
		} else {
			err = s.http.Serve(l)
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			klog.ErrorS(err, "Streaming server stopped")
		}
	}()
	klog.InfoS("Streaming server listening", "url", sc.BaseURL.String())
	return s, nil
}

// Addr is where the server listens.
func (s *Server) Addr() net.Addr { return s.listener.Addr() }

// Close stops the server and ends every open session.
func (s *Server) Close() error { return s.http.Close() }

// adapter is the streaming library's Runtime.
type adapter struct {
	ctrs Containers
	pods Pods
}

func (a *adapter) Exec(ctx context.Context, id string, cmd []string, in io.Reader, out, errOut io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	return a.ctrs.Exec(ctx, id, cmd, in, out, errOut, tty, sizes(ctx, resize))
}

func (a *adapter) Attach(ctx context.Context, id string, in io.Reader, out, errOut io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	return a.ctrs.Attach(ctx, id, in, out, errOut, tty, sizes(ctx, resize))
}

// sizes converts the library's resize events until they end or ctx does:
// the session that reads them may have ended while the client still sends.
func sizes(ctx context.Context, in <-chan remotecommand.TerminalSize) <-chan container.TerminalSize {
	if in == nil {
		return nil
	}
	out := make(chan container.TerminalSize, 1)
	go func() {
		defer close(out)
		for {
			select {
			case sz, ok := <-in:
				if !ok {
					return
				}
				select {
				case out <- container.TerminalSize{Width: sz.Width, Height: sz.Height}:
				case <-ctx.Done():
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}
