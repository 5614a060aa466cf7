package shimapi

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/rpc"
	"net/rpc/jsonrpc"
)

// Client talks to one shim. It is safe for concurrent use; calls that are
// in flight when the shim dies fail with rpc.ErrShutdown or an EOF.
type Client struct {
	c     *rpc.Client
	trace func(ctx context.Context, method string) (end func(error))
}

// Traced makes c report every call to start, which returns what to call
// when the call ends: huskd makes a tracing span per call there. A hook
// rather than an import, because husk-shim shares this package and must
// not link a tracing library. Call it before c is shared.
func (c *Client) Traced(start func(ctx context.Context, method string) (end func(error))) *Client {
	c.trace = start
	return c
}

// Dial connects to the shim serving socketPath.
func Dial(ctx context.Context, socketPath string) (*Client, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", socketPath)
	if err != nil {
		return nil, err
	}
	return &Client{c: jsonrpc.NewClient(conn)}, nil
}

// Close drops the connection; the shim keeps running.
func (c *Client) Close() error { return c.c.Close() }

// call runs method and returns its reply, giving up (without cancelling
// it in the shim) when ctx is done: net/rpc has no cancellation. The
// reply is decoded into a value of its own, which a call given up leaves
// to net/rpc: the answer that comes later is written there, never into
// what the caller already has.
func call[T any](ctx context.Context, c *Client, method string, args any) (_ T, err error) {
	if c.trace != nil {
		end := c.trace(ctx, method)
		defer func() { end(err) }()
	}
	reply := new(T)
	done := c.c.Go(method, args, reply, make(chan *rpc.Call, 1))
	var zero T
	select {
	case <-done.Done:
		var remote rpc.ServerError
		if errors.As(done.Error, &remote) {
			// The shim's own answer: keep its kind (see EncodeError).
			return zero, fmt.Errorf("shim %s: %w", method, DecodeError(string(remote)))
		}
		if done.Error != nil {
			return zero, fmt.Errorf("shim %s: %w", method, done.Error)
		}
		return *reply, nil
	case <-ctx.Done():
		return zero, fmt.Errorf("shim %s: %w", method, ctx.Err())
	}
}

// Info returns the shim's pid and the pause's state.
func (c *Client) Info(ctx context.Context) (InfoReply, error) {
	return call[InfoReply](ctx, c, MethodInfo, Empty{})
}

// WaitPause blocks until the pause has exited and returns its final state.
// An error other than ctx's means the connection to the shim was lost.
func (c *Client) WaitPause(ctx context.Context) (ProcessState, error) {
	return call[ProcessState](ctx, c, MethodWaitPause, Empty{})
}

// Wait blocks until the pod's state changes past after and returns it.
// An error other than ctx's means the connection to the shim was lost.
func (c *Client) Wait(ctx context.Context, after uint64) (Snapshot, error) {
	return call[Snapshot](ctx, c, MethodWait, WaitArgs{After: after})
}

// CreateContainer creates a container whose init waits for Start.
func (c *Client) CreateContainer(ctx context.Context, a CreateContainerArgs) (ContainerState, error) {
	return call[ContainerState](ctx, c, MethodCreateContainer, a)
}

// StartContainer starts a created container.
func (c *Client) StartContainer(ctx context.Context, id string) (ContainerState, error) {
	return call[ContainerState](ctx, c, MethodStartContainer, IDArgs{ID: id})
}

// StopContainer stops a container and returns its final state.
func (c *Client) StopContainer(ctx context.Context, a StopContainerArgs) (ContainerState, error) {
	return call[ContainerState](ctx, c, MethodStopContainer, a)
}

// RemoveContainer kills what is left of a container and removes its
// libcontainer state and cgroup. An unknown ID is fine.
func (c *Client) RemoveContainer(ctx context.Context, id string) error {
	_, err := call[Empty](ctx, c, MethodRemoveContainer, IDArgs{ID: id})
	return err
}

// ReopenLog makes the shim reopen a container's log file.
func (c *Client) ReopenLog(ctx context.Context, id string) error {
	_, err := call[Empty](ctx, c, MethodReopenLog, IDArgs{ID: id})
	return err
}

// UpdateContainer applies new cgroup resources to a running container.
func (c *Client) UpdateContainer(ctx context.Context, a UpdateArgs) error {
	_, err := call[Empty](ctx, c, MethodUpdateContainer, a)
	return err
}

// Stop kills every process of the pod, removes their libcontainer state and
// cgroups, and makes the shim exit once it has replied with the final
// snapshot.
func (c *Client) Stop(ctx context.Context, args StopArgs) (Snapshot, error) {
	return call[Snapshot](ctx, c, MethodStop, args)
}

// Stats reports the shim's own goroutines, descriptors, memory and open
// sessions.
func (c *Client) Stats(ctx context.Context) (StatsReply, error) {
	return call[StatsReply](ctx, c, MethodStats, Empty{})
}
