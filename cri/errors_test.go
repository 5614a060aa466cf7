package cri

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/huskrt/husk/internal/errdefs"
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
			_, err := s.unaryInterceptor(context.Background(), nil, info, c.handler)
			st := status.Convert(err)
			if st.Code() != c.code {
				t.Fatalf("code %v (%v), want %v", st.Code(), err, c.code)
			}
			if !strings.Contains(st.Message(), c.msg) {
				t.Errorf("message %q lacks %q", st.Message(), c.msg)
			}
		})
	}
}
