// Package tracing makes huskd's OpenTelemetry spans: one per CRI call
// (cri/'s interceptors) and, inside a traced call, one per main step
// (sandbox create, shim start and shim calls, CNI ADD and DEL, image
// pulls). They are exported over OTLP/gRPC when [tracing] endpoint or
// OTEL_EXPORTER_OTLP_ENDPOINT is set, as containerd's tracing and
// kubelet's are; otherwise the global provider stays OpenTelemetry's
// no-op and a span costs a context value and no export.
package tracing

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync/atomic"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/metadata"
)

// ServiceName is the service.name of huskd's spans.
const ServiceName = "huskd"

// Config is what Setup needs.
type Config struct {
	// Endpoint is the OTLP/gRPC collector's URL (http:// for plain gRPC,
	// https:// for TLS). Empty: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or
	// OTEL_EXPORTER_OTLP_ENDPOINT, and tracing is off when neither is set.
	Endpoint string
	// SamplingRatio is the share of traces started by huskd that are
	// kept; a call that kubelet traces follows kubelet's decision.
	SamplingRatio float64
	// Version is huskd's, the spans' service.version.
	Version string
}

// Endpoint returns where spans go under cfg, "" when tracing is off.
func (cfg Config) endpoint() string {
	for _, e := range []string{cfg.Endpoint, os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"), os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT")} {
		if e != "" {
			return e
		}
	}
	return ""
}

// Setup installs the global tracer provider and the W3C trace-context
// propagator when an endpoint is configured, and returns where spans go
// ("" when off) and the shutdown that flushes the spans still buffered.
// With no endpoint it installs nothing and shutdown does nothing.
func Setup(ctx context.Context, cfg Config) (endpoint string, shutdown func(context.Context) error, err error) {
	endpoint = cfg.endpoint()
	if endpoint == "" {
		return "", func(context.Context) error { return nil }, nil
	}
	var opts []otlptracegrpc.Option
	if cfg.Endpoint != "" {
		// The rest (headers, TLS files, timeout) still comes from the
		// exporter's OTEL_EXPORTER_OTLP_* variables.
		opts = append(opts, otlptracegrpc.WithEndpointURL(cfg.Endpoint))
	}
	// The client connects lazily: a collector that is down costs dropped
	// spans, never huskd's start.
	exp, err := otlptracegrpc.New(ctx, opts...)
	if err != nil {
		return "", nil, fmt.Errorf("tracing: %w", err)
	}
	res, err := resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", ServiceName), attribute.String("service.version", cfg.Version)),
		// OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win, as the
		// specification says.
		resource.WithFromEnv(), resource.WithHost(), resource.WithTelemetrySDK())
	if err != nil {
		return "", nil, fmt.Errorf("tracing: %w", err)
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(cfg.SamplingRatio))),
	)
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	on.Store(true)
	return endpoint, tp.Shutdown, nil
}

// on is whether Setup installed a provider: with tracing off a call's
// span is ctx's own no-op one, with no allocation.
var on atomic.Bool

// tracer follows the global provider: spans are the SDK's once Setup has
// set it.
var tracer = otel.Tracer("github.com/huskrt/husk")

// StartCall starts the server span of one gRPC call ("/service/method"),
// as the child of the caller's span when the call's metadata carries one
// (kubelet sends W3C traceparent when its own tracing is on). The span is
// named "service/method", as OpenTelemetry's gRPC instrumentation (which
// kubelet uses) names its own.
func StartCall(ctx context.Context, fullMethod string) (context.Context, trace.Span) {
	if !on.Load() {
		return ctx, trace.SpanFromContext(ctx)
	}
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		ctx = otel.GetTextMapPropagator().Extract(ctx, metadataCarrier(md))
	}
	name := strings.TrimPrefix(fullMethod, "/")
	service, method, _ := strings.Cut(name, "/")
	return tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(attribute.String("rpc.system", "grpc"), attribute.String("rpc.service", service), attribute.String("rpc.method", method)))
}

// Step starts the span of one step of a traced call. Outside a traced
// call (recovery, a pod's monitor) it makes none: the returned span is
// ctx's own, non-recording, and End on it does nothing.
func Step(ctx context.Context, name string, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	if !trace.SpanFromContext(ctx).IsRecording() {
		return ctx, trace.SpanFromContext(ctx)
	}
	return tracer.Start(ctx, name, trace.WithAttributes(attrs...))
}

// End ends span, marking it failed with err when err is not nil.
func End(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// PodSandboxID is the attribute naming a pod in a span, kubelet's log key.
func PodSandboxID(id string) attribute.KeyValue { return attribute.String("podSandboxID", id) }

// metadataCarrier reads gRPC metadata for the propagator. gRPC keys are
// lower case, as the propagators' (traceparent, baggage) are.
type metadataCarrier metadata.MD

func (c metadataCarrier) Get(key string) string {
	if v := metadata.MD(c).Get(key); len(v) > 0 {
		return v[0]
	}
	return ""
}

func (c metadataCarrier) Set(key, value string) { metadata.MD(c).Set(key, value) }

func (c metadataCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}
