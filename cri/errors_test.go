package cri

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/huskrt/husk/internal/errdefs"
	"github.com/huskrt/husk/internal/errdefs/errkind"
	"github.com/huskrt/husk/internal/metrics"
	"github.com/huskrt/husk/shim/shimapi"
)

func TestInterceptor(t *testing.T) {
	info := &grpc.UnaryServerInfo{FullMethod: "/runtime.v1.RuntimeService/RunPodSandbox"}
	cases := []struct {
		name    string
		ready   bool
		handler grpc.UnaryHandler
		code    codes.Code
		msg     string
	}{
		{"not ready yet", false, func(context.Context, any) (any, error) { return "ok", nil }, codes.Unavailable, "recovering"},
		{"success", true, func(context.Context, any) (any, error) { return "ok", nil }, codes.OK, ""},
		{"wrapped kind", true, func(context.Context, any) (any, error) {
			return nil, fmt.Errorf("running pod: %w", errdefs.NotFound("pod sandbox %q not found", "x"))
		}, codes.NotFound, `running pod: pod sandbox "x" not found`},
		{"invalid argument keeps its message", true, func(context.Context, any) (any, error) {
			return nil, errdefs.InvalidArgument("config.metadata.name", "must not be empty")
		}, codes.InvalidArgument, "config.metadata.name: must not be empty"},
		{"deadline", true, func(context.Context, any) (any, error) {
			return nil, fmt.Errorf("waiting: %w", context.DeadlineExceeded)
		}, codes.DeadlineExceeded, "waiting"},
		{"plain error", true, func(context.Context, any) (any, error) { return nil, errors.New("disk on fire") }, codes.Unknown, "disk on fire"},
		{"panic", true, func(context.Context, any) (any, error) { panic("nil map") }, codes.Internal, "nil map"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := &Server{}
			if c.ready {
				s.SetReady()
			}
			// Counted under the code the caller sees, panics and refusals too.
			counted := metrics.CRIRequests.WithLabelValues("RunPodSandbox", c.code.String())
			timed := metrics.CRIRequestDuration.WithLabelValues("RunPodSandbox").(prometheus.Histogram)
			calls, observed := testutil.ToFloat64(counted), histogramCount(t, timed)
			_, err := s.unaryInterceptor(context.Background(), nil, info, c.handler)
			st := status.Convert(err)
			if st.Code() != c.code {
				t.Fatalf("code %v (%v), want %v", st.Code(), err, c.code)
			}
			if n := testutil.ToFloat64(counted) - calls; n != 1 {
				t.Errorf("husk_cri_requests_total{code=%s} moved by %v, want 1", c.code, n)
			}
			if n := histogramCount(t, timed) - observed; n != 1 {
				t.Errorf("husk_cri_request_duration_seconds observed %d calls, want 1", n)
			}
			if !strings.Contains(st.Message(), c.msg) {
				t.Errorf("message %q lacks %q", st.Message(), c.msg)
			}
		})
	}
}

func histogramCount(t *testing.T, h prometheus.Histogram) uint64 {
	t.Helper()
	var m dto.Metric
	if err := h.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetHistogram().GetSampleCount()
}

// A condition the shim reports reaches kubelet with its code, not Unknown
// (issue 14): the shim sends its kind with the text (shimapi.EncodeError)
// and the client decodes it into the errdefs kind that the interceptor
// maps.
func TestShimErrorCodes(t *testing.T) {
	info := &grpc.UnaryServerInfo{FullMethod: "/runtime.v1.RuntimeService/StopContainer"}
	cases := []struct {
		shimErr error
		code    codes.Code
	}{
		{errkind.Errorf(errkind.NotFound, "container c1 not found in pod p1"), codes.NotFound},
		{errkind.Errorf(errkind.FailedPrecondition, "container c1 is exited: its log is not reopened"), codes.FailedPrecondition},
		{errkind.Errorf(errkind.Deadline, "container c1 still runs 10s after SIGKILL"), codes.DeadlineExceeded},
		{errkind.Errorf(errkind.AlreadyExists, "container c1 exists in pod p1"), codes.AlreadyExists},
		{errkind.Errorf(errkind.InvalidArgument, "bad resources"), codes.InvalidArgument},
		{errkind.Errorf(errkind.Unavailable, "x"), codes.Unavailable},
		{errkind.Errorf(errkind.Unimplemented, "x"), codes.Unimplemented},
		{errkind.Errorf(errkind.Unauthenticated, "x"), codes.Unauthenticated},
		{errkind.Errorf(errkind.PermissionDenied, "x"), codes.PermissionDenied},
		{errkind.Errorf(errkind.ResourceExhausted, "x"), codes.ResourceExhausted},
		{errors.New("husk-runc update exited with code 1"), codes.Unknown},
	}
	for _, c := range cases {
		t.Run(c.code.String(), func(t *testing.T) {
			s := &Server{}
			s.SetReady()
			_, err := s.unaryInterceptor(context.Background(), nil, info, func(context.Context, any) (any, error) {
				// What shimapi.Client returns for the shim's answer, as
				// container/ wraps it.
				fromShim := fmt.Errorf("shim Shim.StopContainer: %w", shimapi.DecodeError(shimapi.EncodeError(c.shimErr).Error()))
				return nil, fmt.Errorf("stopping container c1: %w", fromShim)
			})
			st := status.Convert(err)
			if st.Code() != c.code {
				t.Errorf("code %v, want %v (%v)", st.Code(), c.code, err)
			}
			if want := "stopping container c1: shim Shim.StopContainer: " + c.shimErr.Error(); st.Message() != want {
				t.Errorf("message %q, want %q", st.Message(), want)
			}
		})
	}
}
