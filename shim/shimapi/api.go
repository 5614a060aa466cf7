// Package shimapi is the contract between huskd and husk-shim: the files a
// shim reads and writes in its pod's state directory, the message it sends
// when it is ready, and a client for the RPC it serves on its socket.
//
// It is deliberately free of libcontainer, so that huskd can talk to shims
// without linking the container runtime.
package shimapi

import (
	"time"
)

// Files in the pod's state directory (<state>/pods/<pod-id>/).
const (
	// SocketName is the unix socket the shim serves (mode 0600).
	SocketName = "shim.sock"
	// PidName holds the shim's pid, written once it is ready.
	PidName = "shim.pid"
	// LogName receives the shim's own log and the pause's stderr.
	LogName = "shim.log"
	// PauseSpecName is the OCI runtime spec of the pause, written by huskd.
	PauseSpecName = "pause.json"
	// RuncRoot is libcontainer's state root for the pod's containers.
	RuncRoot = "runc"
)

// SyncFD is the descriptor on which a starting shim writes one Ready
// message, as JSON, and then closes.
const SyncFD = 3

// Ready is what a shim reports on SyncFD: the pause's pid once it runs, or
// why it could not start.
type Ready struct {
	ShimPID  int    `json:"shimPid,omitempty"`
	PausePID int    `json:"pausePid,omitempty"`
	Error    string `json:"error,omitempty"`
}

// Empty is the argument or reply of calls that need none.
type Empty struct{}

// ProcessState is what the shim knows of one process it started.
type ProcessState struct {
	PID      int       `json:"pid"`
	Running  bool      `json:"running"`
	ExitCode int       `json:"exitCode"`
	ExitedAt time.Time `json:"exitedAt"`
}

// InfoReply answers Shim.Info.
type InfoReply struct {
	ShimPID int          `json:"shimPid"`
	Version string       `json:"version"`
	Pause   ProcessState `json:"pause"`
}

// StopArgs asks the shim to stop every process of the pod and exit.
type StopArgs struct {
	// Timeout bounds how long the shim waits for processes to die after
	// SIGKILL before it gives up.
	Timeout time.Duration `json:"timeout"`
}

// Method names served by the shim, for net/rpc.
const (
	MethodInfo      = "Shim.Info"
	MethodWaitPause = "Shim.WaitPause"
	MethodStop      = "Shim.Stop"
)
