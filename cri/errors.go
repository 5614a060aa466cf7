package cri

import (
	"context"
	"fmt"
	"path"
	"runtime/debug"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/klog/v2"

	"github.com/huskrt/husk/internal/errdefs"
	"github.com/huskrt/husk/internal/metrics"
)

// unaryInterceptor is the one place where errors become gRPC codes. It
// also refuses calls until recovery has finished, turns a panic into
// Internal instead of a dead huskd, and writes the per-call log line.
func (s *Server) unaryInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	method := path.Base(info.FullMethod)
	start := time.Now()
	defer func() { record(method, err, start) }()
	if !s.ready.Load() {
		return nil, status.Error(codes.Unavailable, "husk is recovering its state after a restart; retry shortly")
	}
	defer func() {
		if r := recover(); r != nil {
			klog.ErrorS(nil, "Panic in CRI call", "method", method, "panic", r, "stack", string(debug.Stack()))
			resp, err = nil, status.Error(codes.Internal, fmt.Sprintf("internal error in %s: %v", method, r))
		}
		logCall(method, req, err, time.Since(start))
		err = errdefs.ToGRPC(err)
	}()
	return handler(ctx, req)
}

func (s *Server) streamInterceptor(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
	method := path.Base(info.FullMethod)
	start := time.Now()
	defer func() { record(method, err, start) }()
	if !s.ready.Load() {
		return status.Error(codes.Unavailable, "husk is recovering its state after a restart; retry shortly")
	}
	defer func() {
		if r := recover(); r != nil {
			klog.ErrorS(nil, "Panic in CRI call", "method", method, "panic", r, "stack", string(debug.Stack()))
			err = status.Error(codes.Internal, fmt.Sprintf("internal error in %s: %v", method, r))
		}
		logCall(method, nil, err, time.Since(start))
		err = errdefs.ToGRPC(err)
	}()
	return handler(srv, ss)
}

// record counts a call under the code its caller sees (err is already
// a gRPC status) and observes its time: two atomic adds, no lock.
func record(method string, err error, start time.Time) {
	metrics.CRIRequests.WithLabelValues(method, status.Code(err).String()).Inc()
	metrics.Since(metrics.CRIRequestDuration.WithLabelValues(method), start)
}

// idKeys pulls the IDs kubelet's logs use out of a request, so that one
// grep follows a pod across kubelet's and husk's logs.
type podIDGetter interface{ GetPodSandboxId() string }
type containerIDGetter interface{ GetContainerId() string }

func logCall(method string, req any, err error, d time.Duration) {
	kv := []any{"method", method, "duration", d}
	if r, ok := req.(podIDGetter); ok && r.GetPodSandboxId() != "" {
		kv = append(kv, "podSandboxID", r.GetPodSandboxId())
	}
	if r, ok := req.(containerIDGetter); ok && r.GetContainerId() != "" {
		kv = append(kv, "containerID", r.GetContainerId())
	}
	if err == nil {
		klog.V(4).InfoS("CRI call", kv...)
		return
	}
	switch errdefs.Code(err) {
	case codes.NotFound, codes.AlreadyExists, codes.Canceled, codes.Unimplemented:
		klog.V(2).InfoS("CRI call failed", append(kv, "code", errdefs.Code(err).String(), "err", err.Error())...)
	default:
		klog.ErrorS(err, "CRI call failed", append(kv, "code", errdefs.Code(err).String())...)
	}
}
