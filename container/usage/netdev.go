package usage

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"strconv"
)

// NetDev is one interface's counters, as /proc/net/dev has them.
type NetDev struct {
	Name                                    string
	RxBytes, RxPackets, RxErrors, RxDropped uint64
	TxBytes, TxPackets, TxErrors, TxDropped uint64
}

// ReadNetDev reads the counters of every interface of the network
// namespace pid is in, loopback included: which ones are the pod's is the
// caller's rule. A pid that does not exist is an error wrapping
// os.ErrNotExist.
func ReadNetDev(pid int) ([]NetDev, error) {
	if pid <= 0 {
		return nil, fmt.Errorf("reading network counters: invalid pid %d", pid)
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/net/dev", pid))
	if err != nil {
		return nil, fmt.Errorf("reading network counters of pid %d: %w", pid, err)
	}
	defer f.Close()
	stats, err := ParseNetDev(f)
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

// ParseNetDev parses all of a /proc/net/dev file, loopback included: two
// header lines, then one line per interface. Blank lines are skipped.
func ParseNetDev(r io.Reader) ([]NetDev, error) {
	var stats []NetDev
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
func parseNetDevLine(line []byte) (NetDev, error) {
	name, counters, ok := bytes.Cut(line, []byte{':'})
	if !ok {
		return NetDev{}, fmt.Errorf("no interface name in %q", line)
	}
	name = bytes.TrimSpace(name)
	if len(name) == 0 {
		return NetDev{}, fmt.Errorf("empty interface name in %q", line)
	}
	fields := bytes.Fields(counters)
	if len(fields) < netDevColumns {
		return NetDev{}, fmt.Errorf("%d counters in %q, want %d", len(fields), line, netDevColumns)
	}
	var v [netDevColumns]uint64
	for i := range v {
		n, err := strconv.ParseUint(string(fields[i]), 10, 64)
		if err != nil {
			return NetDev{}, fmt.Errorf("counter %d in %q: %w", i, line, err)
		}
		v[i] = n
	}
	return NetDev{
		Name:    string(name),
		RxBytes: v[rxBytesCol], RxPackets: v[rxPacketsCol], RxErrors: v[rxErrorsCol], RxDropped: v[rxDroppedCol],
		TxBytes: v[txBytesCol], TxPackets: v[txPacketsCol], TxErrors: v[txErrorsCol], TxDropped: v[txDroppedCol],
	}, nil
}
