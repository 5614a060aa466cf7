package network

import (
	"fmt"
	"math"
	"math/big"
	"strings"

	"github.com/huskrt/husk/internal/errdefs"
)

// The pod annotations kubelet's network plugins have always read for the
// bandwidth plugin.
const (
	ingressAnnotation = "kubernetes.io/ingress-bandwidth"
	egressAnnotation  = "kubernetes.io/egress-bandwidth"
)

// bandwidth is the "bandwidth" capability argument from the annotations,
// or nil without them. Rates are bits per second; the burst is left
// effectively unlimited, as kubelet's dockershim and containerd leave it.
func bandwidth(ann map[string]string) (map[string]uint64, error) {
	out := map[string]uint64{}
	for key, dir := range map[string]string{ingressAnnotation: "ingress", egressAnnotation: "egress"} {
		v, ok := ann[key]
		if !ok {
			continue
		}
		rate, err := parseQuantity(v)
		if err != nil {
			return nil, errdefs.InvalidArgument("config.annotations["+key+"]", "%v", err)
		}
		out[dir+"Rate"] = rate
		out[dir+"Burst"] = math.MaxInt32
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

var quantitySuffixes = []struct {
	suffix string
	mult   int64
}{
	{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}, {"Ti", 1 << 40}, {"Pi", 1 << 50}, {"Ei", 1 << 60},
	{"k", 1e3}, {"M", 1e6}, {"G", 1e9}, {"T", 1e12}, {"P", 1e15}, {"E", 1e18},
}

// parseQuantity reads a Kubernetes quantity as the bandwidth annotations
// use it ("10M", "1.5Gi", "100000"), rounding up to a whole number.
// Hand-written: apimachinery's resource.ParseQuantity is the reference,
// but would pull k8s.io/apimachinery into huskd for one function.
func parseQuantity(s string) (uint64, error) {
	num, mult := strings.TrimSpace(s), int64(1)
	for _, q := range quantitySuffixes {
		if strings.HasSuffix(num, q.suffix) {
			num, mult = strings.TrimSuffix(num, q.suffix), q.mult
			break
		}
	}
	r, ok := new(big.Rat).SetString(num)
	if !ok || r.Sign() <= 0 || strings.ContainsAny(num, "eE/") {
		return 0, fmt.Errorf("%q is not a positive quantity", s)
	}
	r.Mul(r, new(big.Rat).SetInt64(mult))
	i := new(big.Int).Quo(r.Num(), r.Denom())
	if new(big.Rat).SetInt(i).Cmp(r) < 0 {
		i.Add(i, big.NewInt(1))
	}
	if !i.IsUint64() {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return i.Uint64(), nil
}
