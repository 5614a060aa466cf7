package stream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"k8s.io/klog/v2"
)

// dialTimeout bounds connecting to the pod's port.
const dialTimeout = 10 * time.Second

// PortForward connects stream to TCP port on the pod's loopback, from
// inside its network namespace (the host's for a host-network pod), and
// copies both ways until either side ends.
func (a *adapter) PortForward(ctx context.Context, podID string, port int32, stream io.ReadWriteCloser) error {
	defer stream.Close()
	netns, err := a.pods.NetNS(podID)
	if err != nil {
		return err
	}
	conn, err := dialInNetNS(ctx, netns, int(port))
	if err != nil {
		return fmt.Errorf("port-forward to port %d of pod %s: %w", port, podID, err)
	}
	defer conn.Close()
	klog.V(4).InfoS("Port-forward connected", "podSandboxID", podID, "port", port)
	podDone, clientGone := make(chan struct{}), make(chan struct{})
	go func() {
		if _, err := io.Copy(conn, stream); err != nil {
			close(clientGone) // the stream broke: nobody reads the answer
			return
		}
		// The client is done sending; the pod may still answer.
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
	}()
	go func() {
		_, _ = io.Copy(stream, conn)
		close(podDone)
	}()
	select {
	case <-podDone:
	case <-clientGone:
	case <-ctx.Done():
	}
	return nil
}

// dialInNetNS connects to localhost:port inside the network namespace at
// path ("" is huskd's own). The socket is created on a thread switched into
// the namespace and keeps it afterwards. IP literals, one after the other:
// resolving "localhost" or dialing in parallel would run on other threads,
// outside the namespace.
func dialInNetNS(ctx context.Context, path string, port int) (net.Conn, error) {
	var conn net.Conn
	dial := func() error {
		var errs []error
		for _, host := range []string{"127.0.0.1", "::1"} {
			d := net.Dialer{Timeout: dialTimeout}
			c, err := d.DialContext(ctx, "tcp", net.JoinHostPort(host, strconv.Itoa(port)))
			if err == nil {
				conn = c
				return nil
			}
			errs = append(errs, err)
		}
		return errors.Join(errs...)
	}
	if path == "" {
		return conn, dial()
	}
	err := ns.WithNetNSPath(path, func(ns.NetNS) error { return dial() })
	return conn, err
}
