package tracing

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel"
)

// The config key wins over the exporter's variables, the traces-only
// variable over the general one, and nothing set means off.
func TestEndpoint(t *testing.T) {
	for _, tc := range []struct {
		name, key, tracesEnv, env, want string
	}{
		{name: "nothing", want: ""},
		{name: "env", env: "http://a:4317", want: "http://a:4317"},
		{name: "traces env", tracesEnv: "http://b:4317", env: "http://a:4317", want: "http://b:4317"},
		{name: "config key", key: "https://c:4317", tracesEnv: "http://b:4317", env: "http://a:4317", want: "https://c:4317"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", tc.tracesEnv)
			t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", tc.env)
			if got := (Config{Endpoint: tc.key}).endpoint(); got != tc.want {
				t.Errorf("endpoint = %q, want %q", got, tc.want)
			}
		})
	}
}

// With no endpoint, Setup installs nothing: spans stay OpenTelemetry's
// no-op ones, which record nothing and are exported nowhere.
func TestSetupOff(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
	before := otel.GetTracerProvider()
	endpoint, shutdown, err := Setup(context.Background(), Config{SamplingRatio: 1})
	if err != nil || endpoint != "" {
		t.Fatalf("Setup = %q, %v; want off", endpoint, err)
	}
	if otel.GetTracerProvider() != before {
		t.Error("Setup with no endpoint installed a tracer provider")
	}
	ctx, span := StartCall(context.Background(), "/runtime.v1.RuntimeService/Version")
	if span.IsRecording() {
		t.Error("a call's span records with tracing off")
	}
	if _, step := Step(ctx, "sandbox.create"); step.IsRecording() {
		t.Error("a step's span records with tracing off")
	}
	if err := shutdown(context.Background()); err != nil {
		t.Error(err)
	}
}

// What a CRI call pays for its span with tracing off.
func BenchmarkCallOff(b *testing.B) {
	ctx := context.Background()
	for b.Loop() {
		c, span := StartCall(ctx, "/runtime.v1.RuntimeService/PodSandboxStatus")
		_, step := Step(c, "sandbox.create")
		End(step, nil)
		End(span, nil)
	}
}
