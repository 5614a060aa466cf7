// husk-runc is husk's front to libcontainer, run by husk-shim once per
// container operation; see package runc. Its command line is a contract
// with the shim only:
//
//	husk-runc --root DIR run --id ID --spec FILE [--inherit-stdio]   (Result JSON on fd 3)
//	husk-runc --root DIR delete --id ID [--force] [--timeout 10s]
//	husk-runc init                                                   (libcontainer's re-exec)
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/opencontainers/runc/libcontainer"
	// The cgroup device controller is registered by import; libcontainer
	// refuses to manage devices without it.
	_ "github.com/opencontainers/cgroups/devices"
	// nsenter's cgo constructor runs before the Go runtime starts when this
	// binary is re-executed as "husk-runc init": it joins the container's
	// namespaces while the process is still single-threaded, which Go itself
	// cannot do.
	_ "github.com/opencontainers/runc/libcontainer/nsenter"
	"github.com/sirupsen/logrus"

	"github.com/huskrt/husk/runc"
)

// version is set with -ldflags "-X main.version=...".
var version = "dev"

func init() {
	// libcontainer starts every container process by re-executing this
	// binary as "init"; it must take over before main runs.
	if len(os.Args) > 1 && os.Args[1] == "init" {
		libcontainer.Init()
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: husk-runc --root DIR run|delete ... (started by husk-shim, not by hand)")
	os.Exit(2)
}

func main() {
	// libcontainer logs through logrus; warnings and errors reach the
	// pod's shim log through stderr.
	logrus.SetLevel(logrus.WarnLevel)
	logrus.SetOutput(os.Stderr)

	global := flag.NewFlagSet("husk-runc", flag.ExitOnError)
	root := global.String("root", "", "libcontainer state root")
	showVersion := global.Bool("version", false, "print the version and exit")
	_ = global.Parse(os.Args[1:])
	if *showVersion {
		fmt.Println("husk-runc", version)
		return
	}
	args := global.Args()
	if *root == "" || len(args) == 0 {
		usage()
	}
	fs := flag.NewFlagSet(args[0], flag.ExitOnError)
	id := fs.String("id", "", "container ID")
	switch args[0] {
	case "run":
		spec := fs.String("spec", "", "OCI runtime spec (config.json)")
		inherit := fs.Bool("inherit-stdio", false, "give the container this process's stdin, stdout and stderr")
		_ = fs.Parse(args[1:])
		pid, err := runc.Run(*root, *id, *spec, *inherit)
		res := runc.Result{PID: pid}
		if err != nil {
			res = runc.Result{Error: err.Error()}
		}
		out := os.NewFile(runc.ResultFD, "result")
		_ = json.NewEncoder(out).Encode(res)
		if err != nil {
			os.Exit(1)
		}
	case "delete":
		force := fs.Bool("force", false, "kill the container's processes first")
		timeout := fs.Duration("timeout", 10*time.Second, "how long processes get to die after SIGKILL")
		_ = fs.Parse(args[1:])
		if err := runc.Delete(*root, *id, *force, *timeout); err != nil {
			fmt.Fprintln(os.Stderr, "husk-runc delete:", err)
			os.Exit(1)
		}
	default:
		usage()
	}
}
