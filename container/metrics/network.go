package metrics

import "github.com/huskrt/husk/container/usage"

// networkMetrics reports the interfaces of the network namespace pid is
// in. They are the pod's, so they go in the pod's metrics, as containerd
// reports them, and not once per container.
func networkMetrics(e *emitter, pid int) {
	all, err := usage.ReadNetDev(pid)
	if err != nil {
		return
	}
	for _, s := range podInterfaces(all) {
		e.add(netRxBytes, s.RxBytes, s.Name)
		e.add(netRxPackets, s.RxPackets, s.Name)
		e.add(netRxDropped, s.RxDropped, s.Name)
		e.add(netRxErrors, s.RxErrors, s.Name)
		e.add(netTxBytes, s.TxBytes, s.Name)
		e.add(netTxPackets, s.TxPackets, s.Name)
		e.add(netTxDropped, s.TxDropped, s.Name)
		e.add(netTxErrors, s.TxErrors, s.Name)
	}
}

// podInterfaces leaves out the loopback, whose traffic never leaves the
// pod (cadvisor ignores it too) — unless it is the only interface: a pod
// without pod networking (husk's until CNI) then still has network series,
// which kubelet and critest expect of every pod.
func podInterfaces(all []usage.NetDev) []usage.NetDev {
	var out []usage.NetDev
	for _, s := range all {
		if s.Name != "lo" {
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		return all
	}
	return out
}
