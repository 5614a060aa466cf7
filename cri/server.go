// Package cri serves the Container Runtime Interface: kubelet's, crictl's
// and critest's view of husk. Each RPC lives in its own file, validation at
// the top; errors come back wrapped around an errdefs kind and are turned
// into gRPC codes by the interceptor in errors.go, the only place that does.
//
// cri never touches the kernel or libcontainer itself: it maps requests to
// the sandbox (and later container and image) managers.
package cri

import (
	"slices"
	"sync"
	"sync/atomic"

	"golang.org/x/sync/singleflight"
	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/huskrt/husk/container"
	"github.com/huskrt/husk/container/usage"
	"github.com/huskrt/husk/image"
	"github.com/huskrt/husk/internal/broadcast"
	"github.com/huskrt/husk/sandbox"
)

// RuntimeName is what Version reports as runtime_name.
const RuntimeName = "husk"

// Handlers are the runtime handlers (RuntimeClass handlers) every husk
// serves: "" is the default, and "husk" names it explicitly. An admin
// adds more names for it with Options.Handlers.
var Handlers = []string{"", "husk"}

// Options configure a Server.
type Options struct {
	// Version is husk's version, reported by Version.
	Version string
	// Handlers are more names of husk's one runtime, beside Handlers: a
	// cluster's RuntimeClasses may name a handler of their own (Kubernetes'
	// node e2e suite names "test-handler", which containerd's CI config
	// defines as a runc runtime).
	Handlers []string
	// ConfigJSON is the effective configuration, shown by a verbose Status.
	ConfigJSON string
	// UserNamespaces says pods may have their own user namespace: the
	// kernel stacks ID-mapped layers under an overlay on the image store.
	UserNamespaces bool
	// Network is the pods' network (nil: none, NetworkReady false).
	Network NetworkStatus
	// Streaming makes the URLs of exec, attach and port-forward sessions.
	Streaming Streaming
	// Node is what validation checks resource values against; the zero
	// value is a node without huge pages whose CPUs are not known.
	Node Node
	// EventBuffer is how many container events a GetContainerEvents
	// subscriber may fall behind before it is dropped; 0:
	// DefaultEventBuffer.
	EventBuffer int
}

// Streaming is the streaming server (package stream), as the CRI calls
// that hand out its URLs need it.
type Streaming interface {
	GetExec(*runtime.ExecRequest) (*runtime.ExecResponse, error)
	GetAttach(*runtime.AttachRequest) (*runtime.AttachResponse, error)
	GetPortForward(*runtime.PortForwardRequest) (*runtime.PortForwardResponse, error)
}

// NetworkStatus is what Status and UpdateRuntimeConfig need of CNI.
type NetworkStatus interface {
	// Ready is nil when a pod can get a network, else why not.
	Ready() error
	// SetPodCIDR gives the built-in network kubelet's pod CIDR.
	SetPodCIDR(cidr string)
}

// Server implements RuntimeService and ImageService.
type Server struct {
	runtime.UnimplementedRuntimeServiceServer
	runtime.UnimplementedImageServiceServer

	opts       Options
	sandboxes  *sandbox.Manager
	images     *image.Service
	containers *container.Manager

	// ready is false until recovery after a restart has finished; until then
	// every call answers Unavailable.
	ready atomic.Bool

	mu      sync.Mutex
	podCIDR string // from UpdateRuntimeConfig

	rates   cpuRates
	cgroups cgroupReaders
	layers  *layerUsage
	reads   singleflight.Group // list reads in flight; see shared
	// The unfiltered list answers, kept between changes.
	podList       listCache[sandbox.Sandbox]
	containerList listCache[container.Container]

	// events are the containers' steps, for GetContainerEvents.
	events broadcast.Broadcaster[*runtime.ContainerEventResponse]
}

// New returns a server over the given managers, which hears of the
// containers' steps: call it before the container manager's Load. It
// answers Unavailable until SetReady is called.
func New(opts Options, sandboxes *sandbox.Manager, images *image.Service, containers *container.Manager) *Server {
	opts.Handlers = append(slices.Clone(Handlers), opts.Handlers...)
	s := &Server{opts: opts, sandboxes: sandboxes, images: images, containers: containers}
	s.layers = newLayerUsage(usage.DirUsage)
	containers.SetEventFunc(s.containerEvent)
	return s
}

// Close ends the GetContainerEvents streams (Unavailable), which a
// graceful stop of the gRPC server would otherwise wait for.
func (s *Server) Close() { s.events.Close() }

// SetReady lets calls through; call it once recovery has finished.
func (s *Server) SetReady() { s.ready.Store(true) }

// Register adds both CRI services to g.
func (s *Server) Register(g *grpc.Server) {
	runtime.RegisterRuntimeServiceServer(g, s)
	runtime.RegisterImageServiceServer(g, s)
}

// MaxMessage is the largest message husk sends or accepts: kubelet's
// limit, so that whatever husk answers, kubelet can read.
const MaxMessage = 16 << 20

// ServerOptions are the interceptors every husk gRPC server needs.
func (s *Server) ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ForceServerCodecV2(cachingCodec{CodecV2: encoding.GetCodecV2("proto"), caches: []encodedCache{&s.podList, &s.containerList}}),
		grpc.UnaryInterceptor(s.unaryInterceptor),
		grpc.StreamInterceptor(s.streamInterceptor),
		// kubelet's own limit; lists of many pods are large.
		grpc.MaxRecvMsgSize(MaxMessage),
		grpc.MaxSendMsgSize(MaxMessage),
	}
}
