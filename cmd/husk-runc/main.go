// husk-runc is husk's front to libcontainer, run by husk-shim once per
// container operation; see package runc. Its command line is a contract
// with the shim only:
//
//	husk-runc --root DIR run    --id ID --spec FILE [--inherit-stdio] [--console-socket-fd N]   (runc/result on fd 3)
//	husk-runc --root DIR create --id ID --spec FILE [--inherit-stdio] [--console-socket-fd N]   (runc/result on fd 3)
//	husk-runc --root DIR exec   --id ID --spec FILE [--inherit-stdio] [--console-socket-fd N --console-width W --console-height H] -- ARGS...   (runc/result on fd 3)
//	husk-runc --root DIR start  --id ID
//	husk-runc --root DIR kill   --id ID --signal N
//	husk-runc --root DIR update --id ID --resources FILE
//	husk-runc --root DIR delete --id ID [--force] [--timeout 10s]
//	husk-runc init                                                   (libcontainer's re-exec)
package main

import (
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
	"golang.org/x/sys/unix"

	"github.com/huskrt/husk/runc"
	"github.com/huskrt/husk/runc/result"
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

// fail reports err on stderr (the shim's log) and exits 1.
func fail(op string, err error) {
	if err != nil {
		fmt.Fprintf(os.Stderr, "husk-runc %s: %v\n", op, err)
		os.Exit(1)
	}
}

// writeResult reports the outcome of run, create or exec on result.FD and
// exits 1 on failure.
func writeResult(pid int, err error) {
	_ = result.Write(os.NewFile(result.FD, "result"), pid, err)
	if err != nil {
		os.Exit(1)
	}
}

// processFlags defines the flags of the commands that start a process (run,
// create, exec): the container's spec and where the process's stdio comes
// from, which stdio gives once the flags are parsed.
func processFlags(fs *flag.FlagSet) (spec *string, stdio func() runc.IO) {
	spec = fs.String("spec", "", "the container's OCI runtime spec (config.json)")
	inherit := fs.Bool("inherit-stdio", false, "give the process this process's stdin, stdout and stderr")
	consoleFD := fs.Int("console-socket-fd", -1, "descriptor of a unix socket that receives the process's pty master")
	return spec, func() runc.IO {
		io := runc.IO{Inherit: *inherit}
		if *consoleFD >= 0 {
			io.Console = os.NewFile(uintptr(*consoleFD), "console-socket")
		}
		return io
	}
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
	case "run", "create":
		spec, stdio := processFlags(fs)
		_ = fs.Parse(args[1:])
		do := runc.Create
		if args[0] == "run" {
			do = runc.Run
		}
		pid, err := do(*root, *id, *spec, stdio())
		writeResult(pid, err)
	case "exec":
		spec, stdio := processFlags(fs)
		width := fs.Uint("console-width", 0, "initial terminal width")
		height := fs.Uint("console-height", 0, "initial terminal height")
		_ = fs.Parse(args[1:])
		pid, err := runc.Exec(*root, *id, *spec, fs.Args(), stdio(), uint16(*width), uint16(*height))
		writeResult(pid, err)
	case "start":
		_ = fs.Parse(args[1:])
		fail("start", runc.Start(*root, *id))
	case "kill":
		sig := fs.Int("signal", int(unix.SIGTERM), "signal number")
		_ = fs.Parse(args[1:])
		fail("kill", runc.Kill(*root, *id, unix.Signal(*sig)))
	case "update":
		resources := fs.String("resources", "", "file holding OCI LinuxResources as JSON")
		_ = fs.Parse(args[1:])
		b, err := os.ReadFile(*resources)
		if err == nil {
			err = runc.Update(*root, *id, b)
		}
		// On the result descriptor, so that the kernel's reason (a memory
		// limit below usage) reaches the CRI caller, not only the log.
		if err != nil {
			fmt.Fprintf(os.Stderr, "husk-runc update: %v\n", err)
		}
		writeResult(0, err)
	case "delete":
		force := fs.Bool("force", false, "kill the container's processes first")
		timeout := fs.Duration("timeout", 10*time.Second, "how long processes get to die after SIGKILL")
		_ = fs.Parse(args[1:])
		fail("delete", runc.Delete(*root, *id, *force, *timeout))
	default:
		usage()
	}
}
