package cri

import (
	"context"
	"fmt"
	"path"
	"runtime/debug"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/klog/v2"

	"github.com/huskrt/husk/internal/errdefs"
	"github.com/huskrt/husk/internal/metrics"
	"github.com/huskrt/husk/internal/tracing"
)

// unaryInterceptor is the one place where errors become gRPC codes. It
// also refuses calls until recovery has finished, turns a panic into
// Internal instead of a dead huskd, writes the per-call log line and makes
// the call's span.
func (s *Server) unaryInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	method := path.Base(info.FullMethod)
	start := time.Now()
	ctx, span := tracing.StartCall(ctx, info.FullMethod)
	defer func() { endSpan(span, req, err); record(method, err, start) }()
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
	ctx, span := tracing.StartCall(ss.Context(), info.FullMethod)
	ss = tracedStream{ss, ctx}
	defer func() { endSpan(span, nil, err); record(method, err, start) }()
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

// tracedStream is a stream whose handler sees the call's span in its
// context.
type tracedStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s tracedStream) Context() context.Context { return s.ctx }

// endSpan ends a call's span with the code its caller sees (err is
// already a gRPC status) and the IDs the request names.
func endSpan(span trace.Span, req any, err error) {
	if !span.IsRecording() {
		span.End()
		return
	}
	span.SetAttributes(attribute.Int("rpc.grpc.status_code", int(status.Code(err))))
	if r, ok := req.(podIDGetter); ok && r.GetPodSandboxId() != "" {
		span.SetAttributes(tracing.PodSandboxID(r.GetPodSandboxId()))
	}
	if r, ok := req.(containerIDGetter); ok && r.GetContainerId() != "" {
		span.SetAttributes(attribute.String("containerID", r.GetContainerId()))
	}
	// OpenTelemetry's rule for gRPC server spans: the caller's mistakes
	// (NotFound, InvalidArgument, ...) are not the server's errors.
	switch status.Code(err) {
	case codes.Unknown, codes.DeadlineExceeded, codes.Unimplemented, codes.Internal, codes.Unavailable, codes.DataLoss:
		tracing.End(span, err)
	default:
		span.End()
	}
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
