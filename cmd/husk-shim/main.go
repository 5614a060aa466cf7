// husk-shim is started by huskd, one per pod. It is the parent of the pod's
// processes and outlives huskd; see package shim.
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"

	"k8s.io/klog/v2"

	"github.com/huskrt/husk/shim"
)

// version is set with -ldflags "-X main.version=...".
var version = "dev"

func init() {
	// One shim runs per pod: the allocation profiler's hash table would
	// cost each of them more than the pause does.
	runtime.MemProfileRate = 0
}

func main() {
	fs := flag.NewFlagSet("husk-shim", flag.ExitOnError)
	klog.InitFlags(fs)
	id := fs.String("id", "", "pod sandbox ID")
	dir := fs.String("dir", "", "the pod's state directory")
	runcPath := fs.String("runc", "", "the husk-runc binary")
	showVersion := fs.Bool("version", false, "print the version and exit")
	_ = fs.Parse(os.Args[1:])
	if *showVersion {
		fmt.Println("husk-shim", version)
		return
	}
	if *id == "" || *dir == "" || *runcPath == "" {
		fmt.Fprintln(os.Stderr, "husk-shim is started by huskd: --id, --dir and --runc are required")
		os.Exit(2)
	}
	if err := shim.Run(shim.Options{PodID: *id, Dir: *dir, RuncPath: *runcPath, Version: version}); err != nil {
		klog.ErrorS(err, "Shim failed", "podSandboxID", *id)
		klog.Flush()
		os.Exit(1)
	}
	klog.Flush()
}
