package main

import (
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"

	"k8s.io/klog/v2"
)

// servePprof serves Go's profiles on addr until stop is called.
func servePprof(addr string) (stop func(), err error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("debug.pprof_address: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux}
	go func() { _ = srv.Serve(l) }()
	klog.InfoS("Serving pprof", "address", l.Addr().String())
	return func() { srv.Close() }, nil
}
