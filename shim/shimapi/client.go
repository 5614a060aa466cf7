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
	c *rpc.Client
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

// call runs method, giving up (without cancelling it in the shim) when ctx
// is done: net/rpc has no cancellation.
func (c *Client) call(ctx context.Context, method string, args, reply any) error {
	call := c.c.Go(method, args, reply, make(chan *rpc.Call, 1))
	select {
	case <-call.Done:
		var remote rpc.ServerError
		if errors.As(call.Error, &remote) {
			// The shim's own answer: keep its kind (see EncodeError).
			return fmt.Errorf("shim %s: %w", method, DecodeError(string(remote)))
		}
		if call.Error != nil {
			return fmt.Errorf("shim %s: %w", method, call.Error)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("shim %s: %w", method, ctx.Err())
	}
}

// Info returns the shim's pid and the pause's state.
func (c *Client) Info(ctx context.Context) (InfoReply, error) {
	var r InfoReply
	err := c.call(ctx, MethodInfo, Empty{}, &r)
	return r, err
}

// WaitPause blocks until the pause has exited and returns its final state.
// An error other than ctx's means the connection to the shim was lost.
func (c *Client) WaitPause(ctx context.Context) (ProcessState, error) {
	var r ProcessState
	err := c.call(ctx, MethodWaitPause, Empty{}, &r)
	return r, err
}

// Wait blocks until the pod's state changes past after and returns it.
// An error other than ctx's means the connection to the shim was lost.
func (c *Client) Wait(ctx context.Context, after uint64) (Snapshot, error) {
	var r Snapshot
	err := c.call(ctx, MethodWait, WaitArgs{After: after}, &r)
	return r, err
}

// CreateContainer creates a container whose init waits for Start.
func (c *Client) CreateContainer(ctx context.Context, a CreateContainerArgs) (ContainerState, error) {
	var r ContainerState
	err := c.call(ctx, MethodCreateContainer, a, &r)
	return r, err
}

// StartContainer starts a created container.
func (c *Client) StartContainer(ctx context.Context, id string) (ContainerState, error) {
	var r ContainerState
	err := c.call(ctx, MethodStartContainer, IDArgs{ID: id}, &r)
	return r, err
}

// StopContainer stops a container and returns its final state.
func (c *Client) StopContainer(ctx context.Context, a StopContainerArgs) (ContainerState, error) {
	var r ContainerState
	err := c.call(ctx, MethodStopContainer, a, &r)
	return r, err
}

// RemoveContainer kills what is left of a container and removes its
// libcontainer state and cgroup. An unknown ID is fine.
func (c *Client) RemoveContainer(ctx context.Context, id string) error {
	return c.call(ctx, MethodRemoveContainer, IDArgs{ID: id}, &Empty{})
}

// ReopenLog makes the shim reopen a container's log file.
func (c *Client) ReopenLog(ctx context.Context, id string) error {
	return c.call(ctx, MethodReopenLog, IDArgs{ID: id}, &Empty{})
}

// UpdateContainer applies new cgroup resources to a running container.
func (c *Client) UpdateContainer(ctx context.Context, a UpdateArgs) error {
	return c.call(ctx, MethodUpdateContainer, a, &Empty{})
}

// Stop kills every process of the pod, removes their libcontainer state and
// cgroups, and makes the shim exit once it has replied with the final
// snapshot.
func (c *Client) Stop(ctx context.Context, args StopArgs) (Snapshot, error) {
	var r Snapshot
	err := c.call(ctx, MethodStop, args, &r)
	return r, err
}

// Stats reports the shim's own goroutines, descriptors, memory and open
// sessions.
func (c *Client) Stats(ctx context.Context) (StatsReply, error) {
	var r StatsReply
	err := c.call(ctx, MethodStats, Empty{}, &r)
	return r, err
}
