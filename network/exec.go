package network

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"
	"k8s.io/klog/v2"
)

// pluginExec runs CNI plugins as libcni's RawExec does, and logs each
// run's duration at -v 4 (what an admin needs to see which plugin makes
// pods slow); its retry on a busy binary starts a fresh command, where
// RawExec's reruns the one that already failed to start.
//
// A plugin is not killed with huskd: killed half way, the bridge plugin
// leaves a bridge its next ADD cannot configure. An orphaned ADD finishes;
// recovery waits for it before its DEL (waitForPlugins).
type pluginExec struct {
	*invoke.RawExec
	version.PluginDecoder
}

var _ invoke.Exec = (*pluginExec)(nil)

func newPluginExec() *pluginExec {
	return &pluginExec{RawExec: &invoke.RawExec{}}
}

func (e *pluginExec) ExecPlugin(ctx context.Context, pluginPath string, stdin []byte, environ []string) ([]byte, error) {
	for attempt := 0; ; attempt++ {
		var stdout, stderr bytes.Buffer
		c := exec.CommandContext(ctx, pluginPath)
		c.Env = environ
		c.Stdin = bytes.NewReader(stdin)
		c.Stdout, c.Stderr = &stdout, &stderr
		t0 := time.Now()
		err := c.Run()
		klog.V(4).InfoS("CNI plugin ran", "plugin", pluginPath, "command", envValue(environ, "CNI_COMMAND"), "podSandboxID", envValue(environ, "CNI_CONTAINERID"), "duration", time.Since(t0), "err", err)
		if err == nil {
			return stdout.Bytes(), nil
		}
		// A plugin binary being replaced is busy for a moment.
		if errors.Is(err, syscall.ETXTBSY) && attempt < 5 {
			time.Sleep(200 * time.Millisecond)
			continue
		}
		return nil, pluginError(err, stdout.Bytes(), stderr.Bytes())
	}
}

// pluginError is the CNI error a failed plugin printed on stdout, or one
// made from its stderr or exit status when it printed none.
func pluginError(err error, stdout, stderr []byte) error {
	if len(stdout) > 0 {
		var e types.Error
		if jerr := json.Unmarshal(stdout, &e); jerr == nil && e.Msg != "" {
			return &e
		}
		return &types.Error{Code: types.ErrInternal, Msg: fmt.Sprintf("plugin failed (%v) with output %q", err, stdout)}
	}
	if len(stderr) > 0 {
		return &types.Error{Code: types.ErrInternal, Msg: fmt.Sprintf("plugin failed (%v): %s", err, bytes.TrimSpace(stderr))}
	}
	return &types.Error{Code: types.ErrInternal, Msg: fmt.Sprintf("plugin failed with no message: %v", err)}
}

func envValue(environ []string, key string) string {
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && k == key {
			return v
		}
	}
	return ""
}
