package shimapi

import (
	"context"
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

// Stop kills every process of the pod, removes their libcontainer state and
// cgroups, and makes the shim exit once it has replied.
func (c *Client) Stop(ctx context.Context, args StopArgs) error {
	return c.call(ctx, MethodStop, args, &Empty{})
}
