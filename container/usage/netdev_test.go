package usage

import (
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
)

const netDevHeader = `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
`

func TestParseNetDev(t *testing.T) {
	const (
		lo   = "    lo:    1234      10    0    0    0     0          0         0     1234      10    0    0    0     0       0          0\n"
		eth0 = "  eth0:12345678901  200    3    4    0     0          0         1      600       7    5    6    0     0       0          0\n"
		veth = "veth1234567890ab:12345678901234 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15\n"
	)
	loStats := NetDev{Name: "lo", RxBytes: 1234, RxPackets: 10, TxBytes: 1234, TxPackets: 10}
	eth0Stats := NetDev{Name: "eth0", RxBytes: 12345678901, RxPackets: 200, RxErrors: 3, RxDropped: 4,
		TxBytes: 600, TxPackets: 7, TxErrors: 5, TxDropped: 6}
	vethStats := NetDev{Name: "veth1234567890ab", RxBytes: 12345678901234, RxPackets: 1, RxErrors: 2, RxDropped: 3,
		TxBytes: 8, TxPackets: 9, TxErrors: 10, TxDropped: 11}
	tests := []struct {
		name    string
		text    string
		want    []NetDev
		wantErr bool
	}{
		{name: "empty", text: ""},
		{name: "header only", text: netDevHeader},
		{name: "short headers only", text: "h1\nh2\n"},
		{name: "loopback kept", text: netDevHeader + lo, want: []NetDev{loStats}},
		{name: "interfaces", text: netDevHeader + lo + eth0 + veth, want: []NetDev{loStats, eth0Stats, vethStats}},
		{name: "blank lines skipped", text: netDevHeader + lo + "\n  \n" + eth0, want: []NetDev{loStats, eth0Stats}},
		{name: "no colon", text: netDevHeader + "  eth0 1 2 3\n", wantErr: true},
		{name: "counters without a name", text: netDevHeader + "  1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n", wantErr: true},
		{name: "empty name", text: netDevHeader + "  : 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n", wantErr: true},
		{name: "short", text: netDevHeader + "  eth0: 1 2 3\n", wantErr: true},
		{name: "not a number", text: netDevHeader + "  eth0: 1 2 x 4 5 6 7 8 9 10 11 12 13 14 15 16\n", wantErr: true},
		{name: "negative", text: netDevHeader + "  eth0: -1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n", wantErr: true},
		{name: "bad line after good ones", text: netDevHeader + lo + "  eth0: 1 2 3\n", wantErr: true},
	}
	for _, tt := range tests {
		got, err := ParseNetDev(strings.NewReader(tt.text))
		if tt.wantErr {
			if err == nil {
				t.Errorf("%s: parsed as %+v, want an error", tt.name, got)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s: got %+v\nwant %+v", tt.name, got, tt.want)
		}
	}
}

func TestReadNetDev(t *testing.T) {
	stats, err := ReadNetDev(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", stats)
	var haveLo bool
	for _, s := range stats {
		if s.Name == "" {
			t.Errorf("interface without a name: %+v", s)
		}
		haveLo = haveLo || s.Name == "lo"
	}
	if !haveLo { // every network namespace has one
		t.Error("no loopback reported")
	}
	for _, pid := range []int{0, -1} {
		if _, err := ReadNetDev(pid); err == nil {
			t.Errorf("ReadNetDev(%d) succeeded", pid)
		}
	}
	if _, err := ReadNetDev(1 << 30); !errors.Is(err, os.ErrNotExist) { // above any pid_max
		t.Errorf("ReadNetDev of a missing pid = %v, want ErrNotExist", err)
	}
}
