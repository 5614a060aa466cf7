package metrics

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"strconv"
)

// ifaceStats are one interface's counters from /proc/net/dev.
type ifaceStats struct {
	name                                    string
	rxBytes, rxPackets, rxErrors, rxDropped uint64
	txBytes, txPackets, txErrors, txDropped uint64
}

// networkMetrics reports the interfaces of the network namespace pid is
// in. They are the pod's, so they go in the pod's metrics, as containerd
// reports them, and not once per container.
func networkMetrics(e *emitter, pid int) {
	all, err := readNetDev(pid)
	if err != nil {
		return
	}
	for _, s := range podInterfaces(all) {
		e.add(netRxBytes, s.rxBytes, s.name)
		e.add(netRxPackets, s.rxPackets, s.name)
		e.add(netRxDropped, s.rxDropped, s.name)
		e.add(netRxErrors, s.rxErrors, s.name)
		e.add(netTxBytes, s.txBytes, s.name)
		e.add(netTxPackets, s.txPackets, s.name)
		e.add(netTxDropped, s.txDropped, s.name)
		e.add(netTxErrors, s.txErrors, s.name)
	}
}

// podInterfaces leaves out the loopback, whose traffic never leaves the
// pod (cadvisor ignores it too) — unless it is the only interface: a pod
// without pod networking (husk's until CNI) then still has network series,
// which kubelet and critest expect of every pod.
func podInterfaces(all []ifaceStats) []ifaceStats {
	var out []ifaceStats
	for _, s := range all {
		if s.name != "lo" {
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		return all
	}
	return out
}

func readNetDev(pid int) ([]ifaceStats, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/net/dev", pid))
	if err != nil {
		return nil, fmt.Errorf("reading network counters of pid %d: %w", pid, err)
	}
	defer f.Close()
	stats, err := parseNetDev(f)
	if err != nil {
		return nil, fmt.Errorf("reading network counters of pid %d: %w", pid, err)
	}
	return stats, nil
}

// The counters of a /proc/net/dev line after "<name>:": eight for
// receiving (bytes packets errs drop fifo frame compressed multicast),
// then eight for transmitting (bytes packets errs drop fifo colls carrier
// compressed).
const (
	rxBytesCol, rxPacketsCol, rxErrorsCol, rxDroppedCol = 0, 1, 2, 3
	txBytesCol, txPacketsCol, txErrorsCol, txDroppedCol = 8, 9, 10, 11
	netDevColumns                                       = 16
)

// parseNetDev parses all of /proc/net/dev, loopback included.
func parseNetDev(r io.Reader) ([]ifaceStats, error) {
	var stats []ifaceStats
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		if n <= 2 { // the two header lines
			continue
		}
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		s, err := parseNetDevLine(sc.Bytes())
		if err != nil {
			return nil, fmt.Errorf("line %d of net/dev: %w", n, err)
		}
		stats = append(stats, s)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return stats, nil
}

// parseNetDevLine parses "  eth0: 1 2 3 ...". A name cannot hold a colon
// (the kernel refuses it), and a wide counter can touch it: "eth0:123".
func parseNetDevLine(line []byte) (ifaceStats, error) {
	name, counters, ok := bytes.Cut(line, []byte{':'})
	if !ok {
		return ifaceStats{}, fmt.Errorf("no interface name in %q", line)
	}
	name = bytes.TrimSpace(name)
	if len(name) == 0 {
		return ifaceStats{}, fmt.Errorf("empty interface name in %q", line)
	}
	fields := bytes.Fields(counters)
	if len(fields) < netDevColumns {
		return ifaceStats{}, fmt.Errorf("%d counters in %q, want %d", len(fields), line, netDevColumns)
	}
	var v [netDevColumns]uint64
	for i := range v {
		n, err := strconv.ParseUint(string(fields[i]), 10, 64)
		if err != nil {
			return ifaceStats{}, fmt.Errorf("counter %d in %q: %w", i, line, err)
		}
		v[i] = n
	}
	return ifaceStats{
		name:    string(name),
		rxBytes: v[rxBytesCol], rxPackets: v[rxPacketsCol], rxErrors: v[rxErrorsCol], rxDropped: v[rxDroppedCol],
		txBytes: v[txBytesCol], txPackets: v[txPacketsCol], txErrors: v[txErrorsCol], txDropped: v[txDroppedCol],
	}, nil
}
