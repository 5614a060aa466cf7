#!/bin/sh
# Runs inside the cgroup v2 VM as husk-vm.service (see base.sh), from the
# read-only payload disk that scripts/cgroupv2-vm.sh made, with its output
# on the serial console. The host reads the lines that start with
# HUSK-VM-: whatever happens here, the last one is "HUSK-VM-RESULT rc=N",
# and a missing one means the run broke. The unit powers the VM off when
# this exits.
P=/opt/husk
up() { cut -d' ' -f1 /proc/uptime; }
echo "HUSK-VM-UP uptime=$(up) kernel=$(uname -r) pid1=$(cat /proc/1/comm)"
# shellcheck source=/dev/null
. "$P/env" # HUSK_VM_RUN_<binary>, HUSK_VM_TEST_TIMEOUT, written by the host
echo "HUSK-VM-CGROUP fs=$(stat -fc %T /sys/fs/cgroup) controllers=[$(cat /sys/fs/cgroup/cgroup.controllers)] subtree_control=[$(cat /sys/fs/cgroup/cgroup.subtree_control)] self=$(cat /proc/self/cgroup)"
# systemd as PID 1 with D-Bus: what the systemd cgroup driver talks to.
echo "HUSK-VM-SYSTEMD version=$(systemctl --version | sed -n 1p | cut -d' ' -f2) dbus=$(systemctl is-active dbus.socket) system_bus=$(test -S /run/dbus/system_bus_socket && echo yes || echo no)"

export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
# The tools of `make test`'s TEST_ENV, at their places on the payload.
export HUSK_BIN=$P/bin HUSK_CRICTL=$P/tools/crictl HUSK_BUSYBOX=$P/tools/busybox HUSK_CRITEST=$P/tools/critest
# husktest, built on the host: the guest has no Go (conformance/images).
export HUSK_TESTBIN=$P/tests/husktest
# critest's ratchet, and the groups of it run here (see cgroupv2-vm.sh).
export HUSK_CRITEST_EXPECTED=$P/tests/critest-expected HUSK_CRITEST_FOCUS HUSK_IMAGEBIN=$P/tests/imagebin
# kubelet for conformance/kubelet, when the host put it in the payload.
[ -x $P/tools/kubelet ] && export HUSK_KUBELET=$P/tools/kubelet
# The tests that wait on kubelet's work (conformance/kubelet) chose their
# deadlines on a host many times faster than this emulated one.
export HUSK_TEST_TIMESCALE=5
# The kernel would load these on first use too; loading them here keeps
# that out of the first test's time.
modprobe -a overlay bridge veth br_netfilter nf_tables nft_chain_nat nft_compat xt_MASQUERADE 2>&1 | sed 's/^/HUSK-VM-NOTE modprobe: /'

rc=0
for t in $P/tests/*.test; do
	name=$(basename "$t" .test)
	eval "run=\${HUSK_VM_RUN_$name:-}"
	if [ -z "$run" ]; then
		echo "HUSK-VM-NOTE no HUSK_VM_RUN_$name: $name not run"
		continue
	fi
	echo "HUSK-VM-TESTS-BEGIN $name uptime=$(up)"
	# A writable working directory: go test runs a test in its package's
	# directory, which the payload only has read-only.
	wd=$(mktemp -d "/tmp/$name.XXXXXX")
	(cd "$wd" && "$t" -test.v -test.count=1 -test.timeout "$HUSK_VM_TEST_TIMEOUT" -test.run "$run" 2>&1)
	r=$?
	rm -rf "$wd"
	echo "HUSK-VM-TESTS-END $name rc=$r uptime=$(up)"
	[ $r -eq 0 ] || rc=$r
done
# Which controllers the run left enabled at the root (huskd's cgroup
# parents live there).
echo "HUSK-VM-CGROUP-AFTER subtree_control=[$(cat /sys/fs/cgroup/cgroup.subtree_control)]"
if [ $rc -ne 0 ]; then
	# Without huskd's probe of overlayfs' "lowerdir+=" (Linux 6.8), which
	# 6.1 refuses, with a message, on every huskd start and image pull.
	dmesg --level=emerg,alert,crit,err,warn | grep -v 'unrecognized mount option "lowerdir+=' |
		tail -40 | sed 's/^/HUSK-VM-DMESG /'
fi
echo "HUSK-VM-RESULT rc=$rc uptime=$(up)"
sync
