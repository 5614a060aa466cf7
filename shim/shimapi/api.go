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

// GoFD is the descriptor on which a shim reads one byte before it starts
// the pause: huskd starts the shim early, so that the shim's own start
// overlaps huskd's preparation of the pod, and says go once the pause's
// spec and namespaces are ready. End-of-file instead
// means huskd gave the pod up (or died): the shim exits, having made
// nothing.
const GoFD = 4

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
	ShimPID  int      `json:"shimPid"`
	Version  string   `json:"version"`
	Snapshot Snapshot `json:"snapshot"`
}

// StopArgs asks the shim to stop every process of the pod and exit.
type StopArgs struct {
	// Timeout bounds how long the shim waits for processes to die after
	// SIGKILL before it gives up.
	Timeout time.Duration `json:"timeout"`
}

// Container states as the shim records them.
const (
	StatusCreated = "created"
	StatusRunning = "running"
	StatusExited  = "exited"
)

// ContainerState is what the shim knows of one container: the shim, not
// huskd, records it, so it is right even for what happened while huskd
// was down. The shim keeps all of them in ContainersFile.
type ContainerState struct {
	ID         string    `json:"id"`
	PID        int       `json:"pid"`
	Status     string    `json:"status"`
	CreatedAt  time.Time `json:"createdAt"`
	StartedAt  time.Time `json:"startedAt,omitempty"`
	FinishedAt time.Time `json:"finishedAt,omitempty"`
	ExitCode   int       `json:"exitCode"`
	// Reason is Completed, Error, OOMKilled, or why a start failed.
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message,omitempty"`
}

// ContainersFile, in the pod's state directory, holds the shim's
// Snapshot, rewritten atomically on every change.
const ContainersFile = "containers.json"

// Snapshot is the state of every process of the pod.
type Snapshot struct {
	// Seq grows with every change; Wait returns once it passes a value.
	Seq        uint64           `json:"seq"`
	Pause      ProcessState     `json:"pause"`
	Containers []ContainerState `json:"containers"`
	// Logs is what the shim has written to container logs so far, as of
	// this snapshot (a write is no change: it moves no Seq). Zero from
	// shims older than the field.
	Logs LogCounts `json:"logs"`
}

// LogCounts is what a shim wrote to its containers' CRI log files since it
// started, for huskd's metrics: records (lines, P pieces included) and
// their bytes as written (timestamp, stream and tag included).
type LogCounts struct {
	Lines uint64 `json:"lines"`
	Bytes uint64 `json:"bytes"`
}

// WaitArgs asks for the first snapshot whose Seq is greater than After.
type WaitArgs struct {
	After uint64 `json:"after"`
}

// CreateContainerArgs asks the shim to create a container whose bundle
// (config.json, and the rootfs huskd mounted) is ready.
type CreateContainerArgs struct {
	ID     string `json:"id"`
	Bundle string `json:"bundle"`
	// LogPath is the CRI log file; empty means the output is discarded.
	LogPath   string `json:"logPath,omitempty"`
	Stdin     bool   `json:"stdin,omitempty"`
	StdinOnce bool   `json:"stdinOnce,omitempty"`
	TTY       bool   `json:"tty,omitempty"`
	// CgroupPath is the container's cgroup (cgroupfs form). Shims before
	// OOMFile read the OOM kill counter under it; it is still sent to them.
	CgroupPath string `json:"cgroupPath"`
	// OOMFile is the file whose oom_kill line counts the container's OOM
	// kills (v1 memory.oom_control, v2 memory.events), read when the
	// container is created and when it exits. huskd finds it where the
	// host mounts the memory controller; the shim, one per pod, does not
	// link the cgroups library to look.
	OOMFile string `json:"oomFile,omitempty"`
}

// IDArgs names a container.
type IDArgs struct {
	ID string `json:"id"`
}

// StopContainerArgs asks the shim to stop a container: Signal, then
// SIGKILL to all its processes after Timeout (at once when it is zero).
type StopContainerArgs struct {
	ID      string        `json:"id"`
	Signal  int           `json:"signal"`
	Timeout time.Duration `json:"timeout"`
}

// UpdateArgs carries new cgroup resources, an OCI LinuxResources in JSON.
type UpdateArgs struct {
	ID        string `json:"id"`
	Resources []byte `json:"resources"`
}

// Method names served by the shim, for net/rpc.
const (
	MethodInfo            = "Shim.Info"
	MethodWaitPause       = "Shim.WaitPause"
	MethodWait            = "Shim.Wait"
	MethodStop            = "Shim.Stop"
	MethodCreateContainer = "Shim.CreateContainer"
	MethodStartContainer  = "Shim.StartContainer"
	MethodStopContainer   = "Shim.StopContainer"
	MethodRemoveContainer = "Shim.RemoveContainer"
	MethodReopenLog       = "Shim.ReopenLog"
	MethodUpdateContainer = "Shim.UpdateContainer"
	MethodStats           = "Shim.Stats"
)

// StatsReply is what a shim holds, for an admin or a test that checks that
// sessions leave nothing behind. Heap figures are read after a collection.
type StatsReply struct {
	Goroutines int `json:"goroutines"`
	// FDs is the number of descriptors the shim has open.
	FDs int `json:"fds"`
	// HeapAlloc is the bytes of live heap objects; HeapInuse the bytes in
	// in-use heap spans (live objects and fragmentation); Sys all the
	// memory the Go runtime took from the kernel.
	HeapAlloc uint64 `json:"heapAlloc"`
	HeapInuse uint64 `json:"heapInuse"`
	Sys       uint64 `json:"sys"`
	// Sessions is the exec and attach sessions open.
	Sessions int `json:"sessions"`
}
