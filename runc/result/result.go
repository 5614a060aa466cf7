// Package result is what husk-runc reports of run, create and exec on
// descriptor FD, as JSON: {"pid":N} or {"error":"..."}. husk-runc writes
// it and the shim reads it; this leaf package is the one place of the
// format, and imports nothing of libcontainer, which the shim must not
// link (package runc says why).
package result

import (
	"encoding/json"
	"io"
)

// FD is the descriptor on which husk-runc writes its Result.
const FD = 3

// Result is the outcome of one husk-runc operation that starts a process.
type Result struct {
	PID   int    `json:"pid,omitempty"`
	Error string `json:"error,omitempty"`
}

// Write writes the outcome of an operation, pid or err, on w.
func Write(w io.Writer, pid int, err error) error {
	res := Result{PID: pid}
	if err != nil {
		res = Result{Error: err.Error()}
	}
	return json.NewEncoder(w).Encode(res)
}

// Read decodes what husk-runc wrote. An error means b is no Result:
// husk-runc died before writing one.
func Read(b []byte) (Result, error) {
	var res Result
	err := json.Unmarshal(b, &res)
	return res, err
}
