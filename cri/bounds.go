package cri

import (
	"fmt"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/huskrt/husk/internal/errdefs"
)

// Bounds on what a request may carry. Whatever a request holds ends up in
// a record on disk and in huskd's memory for the object's life, so every
// string and map is bounded: by Kubernetes' own limits where it has one
// (k8s.io/apimachinery/pkg/util/validation, pkg/api/validation and
// k8s.io/kubernetes/pkg/apis/core/validation), with a margin where kubelet
// or critest legitimately send more, else by the kernel's.
const (
	// maxName bounds pod and container names, namespaces and UIDs: a
	// DNS-1123 subdomain (DNS1123SubdomainMaxLength), Kubernetes' longest
	// name. Namespaces and container names are DNS-1123 labels (63) in
	// Kubernetes, but critest makes container names of up to ~95 bytes.
	maxName = 253
	// maxLabelKey bounds label and annotation keys: a qualified name, a
	// DNS-1123 subdomain prefix, '/' and a 63-byte name.
	maxLabelKey = 253 + 1 + 63
	// maxLabelValue bounds label values. Kubernetes' are 63 bytes
	// (LabelValueMaxLength), but kubelet puts the pod's name, up to 253,
	// into io.kubernetes.pod.name.
	maxLabelValue = 253
	// maxLabels bounds a label map, keys and values together: Kubernetes
	// bounds annotations so (TotalAnnotationSizeLimitB, 256 KiB) and labels
	// only one by one.
	maxLabels = 256 << 10
	// maxAnnotations bounds an annotation map, keys and values together:
	// four times TotalAnnotationSizeLimitB, because kubelet adds its own
	// to a container's (its ports and preStop handler as JSON).
	maxAnnotations = 4 * maxLabels
	// maxMap bounds any other map, keys and values together (sysctls,
	// unified cgroup settings).
	maxMap = maxLabels
	// maxString bounds every other string: PATH_MAX, the longest path the
	// kernel takes. No other CRI string needs more.
	maxString = 4096
	// maxArg bounds one argument or environment entry: the kernel's
	// MAX_ARG_STRLEN (32 pages) counts the terminating NUL; execve refuses
	// a longer one (E2BIG).
	maxArg = 128<<10 - 1
	// maxArgs bounds command, args and envs together: execve's ceiling
	// for arguments and environment, 3/4 of _STK_LIM, whatever the stack
	// limit.
	maxArgs = 6 << 20
	// maxConfig bounds a whole PodSandboxConfig or ContainerConfig as
	// encoded, unknown fields included: half of the 16 MiB message limit,
	// room for the largest container config Kubernetes makes (maxArgs
	// plus maxAnnotations).
	maxConfig = 8 << 20
)

// checkConfigSize bounds a config as a whole.
func checkConfigSize(field string, m proto.Message) error {
	if n := proto.Size(m); n > maxConfig {
		return errdefs.InvalidArgument(field, "%d bytes encoded; at most %d (8 MiB) are accepted", n, maxConfig)
	}
	return nil
}

// checkLength bounds one string; what says what the bound is.
func checkLength(field, s string, max int, what string) error {
	return checkSize(field, len(s), max, what)
}

func checkSize(field string, n, max int, what string) error {
	if n > max {
		return errdefs.InvalidArgument(field, "%d bytes; at most %d are accepted (%s)", n, max, what)
	}
	return nil
}

// checkLabels bounds a label map: keys, values and the whole.
func checkLabels(field string, m map[string]string) error {
	total := 0
	for k, v := range m {
		if err := checkKey(field, k); err != nil {
			return err
		}
		if len(v) > maxLabelValue {
			return errdefs.InvalidArgument(field, "value of %s: %d bytes; at most %d are accepted (a Kubernetes name)", quoteKey(k), len(v), maxLabelValue)
		}
		total += len(k) + len(v)
	}
	if total > maxLabels {
		return errdefs.InvalidArgument(field, "%d labels of %d bytes; at most %d bytes (256 KiB) are accepted", len(m), total, maxLabels)
	}
	return nil
}

// checkAnnotations bounds an annotation map: keys and the whole.
func checkAnnotations(field string, m map[string]string) error {
	total := 0
	for k, v := range m {
		if err := checkKey(field, k); err != nil {
			return err
		}
		total += len(k) + len(v)
	}
	if total > maxAnnotations {
		return errdefs.InvalidArgument(field, "%d annotations of %d bytes; at most %d bytes (1 MiB) are accepted", len(m), total, maxAnnotations)
	}
	return nil
}

func checkKey(field, k string) error {
	if k == "" {
		return errdefs.InvalidArgument(field, "empty key")
	}
	if len(k) > maxLabelKey {
		return errdefs.InvalidArgument(field, "key %s: %d bytes; at most %d are accepted (a qualified name)", quoteKey(k), len(k), maxLabelKey)
	}
	return nil
}

// quoteKey quotes a key for a message, cut short: the message must not
// carry the megabyte it refuses.
func quoteKey(k string) string {
	if len(k) > 64 {
		return fmt.Sprintf("%q...", k[:64])
	}
	return fmt.Sprintf("%q", k)
}

type limit struct {
	max  int
	what string // what the bound is, for the message
}

var (
	stringLimit = limit{maxString, "PATH_MAX, the longest path"}
	argLimit    = limit{maxArg, "MAX_ARG_STRLEN, the longest argument execve takes"}
)

// stringLimits are the fields whose strings may be longer than maxString.
var stringLimits = map[protoreflect.FullName]limit{
	"runtime.v1.ContainerConfig.command": argLimit,
	"runtime.v1.ContainerConfig.args":    argLimit,
	"runtime.v1.KeyValue.value":          argLimit,
}

// mapLimits are the maps bounded otherwise than by maxMap.
var mapLimits = map[protoreflect.Name]int{
	"labels":      maxLabels,
	"annotations": maxAnnotations,
}

// checkStrings bounds every string, bytes and map field set in m, nested
// ones included, by maxString and maxMap unless the field has a bound of
// its own: the catch-all that keeps fields no other check knows (newer
// CRI fields among them) from carrying megabytes. field is m's path in
// the request.
func checkStrings(field string, m protoreflect.Message) error {
	var err error
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		name := joinField(field, string(fd.Name()))
		switch {
		case fd.IsMap():
			err = checkMap(name, fd, v.Map())
		case fd.IsList():
			if k := fd.Kind(); k != protoreflect.StringKind && k != protoreflect.BytesKind && k != protoreflect.MessageKind {
				break // numbers and enums
			}
			l := v.List()
			for i := 0; i < l.Len() && err == nil; i++ {
				err = checkValue(fmt.Sprintf("%s[%d]", name, i), fd, l.Get(i))
			}
		default:
			err = checkValue(name, fd, v)
		}
		return err == nil
	})
	return err
}

func checkValue(field string, fd protoreflect.FieldDescriptor, v protoreflect.Value) error {
	l, ok := stringLimits[fd.FullName()]
	if !ok {
		l = stringLimit
	}
	switch fd.Kind() {
	case protoreflect.StringKind:
		return checkLength(field, v.String(), l.max, l.what)
	case protoreflect.BytesKind:
		return checkSize(field, len(v.Bytes()), l.max, l.what)
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return checkStrings(field, v.Message())
	}
	return nil
}

func checkMap(field string, fd protoreflect.FieldDescriptor, m protoreflect.Map) error {
	limit, ok := mapLimits[fd.Name()]
	if !ok {
		limit = maxMap
	}
	total := 0
	var err error
	m.Range(func(k protoreflect.MapKey, v protoreflect.Value) bool {
		key := k.String()
		if err = checkLength(field, key, maxString, "PATH_MAX, for a key"); err != nil {
			return false
		}
		total += len(key)
		switch fd.MapValue().Kind() {
		case protoreflect.StringKind:
			total += len(v.String())
			// An annotation or label value is bounded by its map's total
			// (and checkLabels); any other map's one by one too.
			if !ok {
				err = checkLength(fmt.Sprintf("%s[%s]", field, quoteKey(key)), v.String(), maxString, stringLimit.what)
			}
		case protoreflect.BytesKind:
			total += len(v.Bytes())
		case protoreflect.MessageKind:
			err = checkStrings(fmt.Sprintf("%s[%s]", field, quoteKey(key)), v.Message())
		}
		return err == nil
	})
	if err != nil {
		return err
	}
	if total > limit {
		return errdefs.InvalidArgument(field, "%d entries of %d bytes; at most %d bytes are accepted", m.Len(), total, limit)
	}
	return nil
}

func joinField(parent, name string) string {
	if parent == "" {
		return name
	}
	return parent + "." + name
}

// checkExecStrings bounds what the container's process is started with:
// execve refuses a single string over MAX_ARG_STRLEN, and all of them
// over its ceiling (the image's environment comes on top).
func checkExecStrings(field string, command, args []string, envs []string) error {
	total := 0
	for _, group := range []struct {
		name string
		list []string
	}{{"command", command}, {"args", args}, {"envs", envs}} {
		for i, s := range group.list {
			if err := checkLength(fmt.Sprintf("%s.%s[%d]", field, group.name, i), s, argLimit.max, argLimit.what); err != nil {
				return err
			}
			total += len(s) + 1
		}
	}
	if total > maxArgs {
		return errdefs.InvalidArgument(field, "command, args and envs hold %d bytes; at most %d (6 MiB, execve's ceiling) are accepted", total, maxArgs)
	}
	return nil
}

// hasDotDot reports whether a path has a ".." element.
func hasDotDot(p string) bool {
	for _, el := range strings.Split(p, "/") {
		if el == ".." {
			return true
		}
	}
	return false
}
