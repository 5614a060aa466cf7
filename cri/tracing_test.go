package cri

import (
	"context"
	"strconv"
	"testing"

	otelcodes "go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// A call's span names the pod it was about and is an error only for the
// codes that are the server's fault, as OpenTelemetry's gRPC convention
// says: a NotFound is the caller's answer, not huskd's failure.
func TestEndSpan(t *testing.T) {
	for _, tc := range []struct {
		code codes.Code
		want otelcodes.Code
	}{
		{codes.OK, otelcodes.Unset},
		{codes.NotFound, otelcodes.Unset},
		{codes.InvalidArgument, otelcodes.Unset},
		{codes.Internal, otelcodes.Error},
		{codes.Unknown, otelcodes.Error},
		{codes.DeadlineExceeded, otelcodes.Error},
	} {
		sr := tracetest.NewSpanRecorder()
		tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
		_, span := tp.Tracer("test").Start(context.Background(), "runtime.v1.RuntimeService/PodSandboxStatus")
		endSpan(span, &runtime.PodSandboxStatusRequest{PodSandboxId: "p1"}, status.Error(tc.code, "m"))
		ended := sr.Ended()
		if len(ended) != 1 {
			t.Fatalf("%s: %d spans ended", tc.code, len(ended))
		}
		if got := ended[0].Status().Code; got != tc.want {
			t.Errorf("%s: span status %s, want %s", tc.code, got, tc.want)
		}
		attrs := map[string]string{}
		for _, a := range ended[0].Attributes() {
			attrs[string(a.Key)] = a.Value.String()
		}
		if attrs["podSandboxID"] != "p1" || attrs["rpc.grpc.status_code"] != strconv.Itoa(int(tc.code)) {
			t.Errorf("%s: attributes %v", tc.code, attrs)
		}
	}
}
