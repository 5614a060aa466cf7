package network

import (
	"fmt"
	"net/netip"
	"strings"
	"sync"

	"github.com/coreos/go-iptables/iptables"
	"k8s.io/klog/v2"
)

// The built-in network masquerades what its pods send off the pod subnet
// with one chain per bridge, written once, as Docker does for its bridge,
// instead of the bridge plugin's ipMasq: that writes a chain and three
// rules for every pod and removes them on DEL, ten iptables runs on ADD
// and six on DEL (about 20 and 50 ms here, most of a pod's network set-up
// and tear-down), and it leaves them behind when a pod's namespace is gone
// before DEL, since it learns the address to remove from inside it.
//
// The chain lives as long as the bridge: neither goes with the last pod.
// RemoveMasquerade takes it away.

// masqChain is the nat chain of the bridge's masquerade; iptables allows
// 28 characters and a bridge name has at most 15.
func masqChain(bridge string) string { return "HUSK-MASQ-" + bridge }

func masqComment(bridge string) string { return "husk: masquerade pods of " + bridge }

// masquerade remembers which subnets have their rules, so that only a
// huskd's first pod on a subnet pays for the iptables runs.
type masquerade struct {
	mu   sync.Mutex
	done map[string]bool // bridge + " " + subnet
}

func (m *masquerade) ensure(bridge, subnets string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, s := range strings.Split(subnets, ",") {
		key := bridge + " " + strings.TrimSpace(s)
		if m.done[key] {
			continue
		}
		if err := EnsureMasquerade(bridge, strings.TrimSpace(s)); err != nil {
			return err
		}
		if m.done == nil {
			m.done = map[string]bool{}
		}
		m.done[key] = true
	}
	return nil
}

func iptablesFor(p netip.Prefix) (*iptables.IPTables, error) {
	proto := iptables.ProtocolIPv4
	if p.Addr().Is6() {
		proto = iptables.ProtocolIPv6
	}
	return iptables.NewWithProtocol(proto)
}

// EnsureMasquerade makes traffic from subnet that leaves it (and is not
// multicast) go out with the node's address: nat POSTROUTING sends
// traffic from the subnet to the bridge's chain, which returns for the
// subnet itself and multicast and masquerades the rest. It is idempotent.
// Exported so that benchmarks give another runtime the same rules.
func EnsureMasquerade(bridge, subnet string) error {
	p, err := netip.ParsePrefix(subnet)
	if err != nil {
		return fmt.Errorf("built-in network subnet %q: %w", subnet, err)
	}
	p = p.Masked()
	ipt, err := iptablesFor(p)
	if err != nil {
		return fmt.Errorf("masquerade for %s: %w", subnet, err)
	}
	chain, comment := masqChain(bridge), masqComment(bridge)
	multicast := "224.0.0.0/4"
	if p.Addr().Is6() {
		multicast = "ff00::/8"
	}
	ok, err := ipt.ChainExists("nat", chain)
	if err == nil && !ok {
		err = ipt.NewChain("nat", chain)
	}
	rules := [][]string{
		{chain, "-d", p.String(), "-m", "comment", "--comment", comment, "-j", "RETURN"},
		{chain, "-d", multicast, "-m", "comment", "--comment", comment, "-j", "RETURN"},
		{chain, "-m", "comment", "--comment", comment, "-j", "MASQUERADE"},
		{"POSTROUTING", "-s", p.String(), "-m", "comment", "--comment", comment, "-j", chain},
	}
	for _, r := range rules {
		if err != nil {
			break
		}
		err = ipt.AppendUnique("nat", r[0], r[1:]...)
	}
	if err != nil {
		return fmt.Errorf("masquerade for %s on %s: %w", subnet, bridge, err)
	}
	klog.InfoS("Pod traffic leaving the subnet is masqueraded", "bridge", bridge, "subnet", p.String(), "chain", chain)
	return nil
}

// RemoveMasquerade deletes the bridge's chain and the POSTROUTING rules
// that lead to it, for IPv4 and IPv6; what is not there is fine.
func RemoveMasquerade(bridge string) error {
	chain := masqChain(bridge)
	var errs []string
	for _, proto := range []iptables.Protocol{iptables.ProtocolIPv4, iptables.ProtocolIPv6} {
		ipt, err := iptables.NewWithProtocol(proto)
		if err != nil {
			continue // no ip6tables: nothing of that family was written
		}
		if ok, err := ipt.ChainExists("nat", chain); err != nil || !ok {
			continue
		}
		rules, err := ipt.List("nat", "POSTROUTING")
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		for _, r := range rules {
			f := strings.Fields(r)
			if len(f) < 2 || f[0] != "-A" || !strings.HasSuffix(r, " -j "+chain) {
				continue
			}
			// go-iptables quotes nothing: the comment's words come apart;
			// delete by the source the rule matches instead.
			for i := 0; i+1 < len(f); i++ {
				if f[i] == "-s" {
					if err := ipt.DeleteIfExists("nat", "POSTROUTING", "-s", f[i+1], "-m", "comment", "--comment", masqComment(bridge), "-j", chain); err != nil {
						errs = append(errs, err.Error())
					}
				}
			}
		}
		if err := ipt.ClearAndDeleteChain("nat", chain); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("removing masquerade of %s: %s", bridge, strings.Join(errs, "; "))
	}
	return nil
}
