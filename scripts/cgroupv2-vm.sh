#!/bin/bash
# Runs husk's tests on cgroup v2, in a VM: this machine is cgroup v1
# (hybrid) and its own supervisor lives in the v1 hierarchies, so the host's
# cgroup mounts are never touched; a VM with its own kernel has cgroup v2
# alone (cgroup_no_v1=all). Called by `make test-cgroupv2`, which builds what
# goes in first. There is no KVM here: qemu emulates (TCG), 15-30x slower
# than the host for fork/exec-heavy work, so everything is built on the
# host and only the tests that must see cgroup v2 run inside.
#
# The VM's base (Debian 12 with systemd, Debian's 6.1 kernel, an initrd) is
# built once by scripts/vm/base.sh and kept in $HUSK_VM_CACHE, under a name
# that is a hash of what it was built from. Each run makes a fresh root
# image from it and a second, read-only disk with the payload (husk's
# binaries, the test binaries, crictl, critest, busybox), boots with
# systemd as PID 1, and reads the results from the serial console.
# `cgroupv2-vm.sh --base` builds the base when missing, and nothing else.
#
# Environment:
#   HUSK_VM_RUN           -test.run of integration.test inside (default below)
#   HUSK_VM_RUN_KUBELET   -test.run of kubelet.test, when the Makefile put it
#                         in HUSK_VM_TESTS (default ^TestStaticPod$; ^$ for
#                         none)
#   HUSK_VM_RUN_CRITEST   -test.run of critest.test (default ^TestCritest$;
#                         ^$ for none); HUSK_CRITEST_FOCUS narrows critest
#   HUSK_KUBELET          the kubelet binary kubelet.test runs (static;
#                         default .tools/bin/kubelet, by scripts/kubelet.sh)
#   HUSK_VM_TESTS         directory of the *.test binaries and husktest
#                         (default bin/cgroupv2-vm, made by the Makefile)
#   HUSK_VM_TIMEOUT       seconds before the VM is killed (default 1500)
#   HUSK_VM_TEST_TIMEOUT  go test -timeout inside (default 20m)
#   HUSK_VM_CACHE         where bases are kept (default /var/cache/husk)
#   HUSK_VM_LOG           the serial console's copy (default bin/cgroupv2-vm.log)
#   HUSK_VM_APPEND        more kernel command line words
set -euo pipefail
cd "$(dirname "$0")/.."
BASE_ONLY=""
[ "${1:-}" = --base ] && BASE_ONLY=1

# The integration tests whose code paths read or write cgroups: limits,
# stats and metrics, OOM, live updates, user namespaces, exec, restarts of
# huskd, and removal that must leave no cgroup behind.
DEFAULT_RUN='^(TestPodLifecycle|TestContainerLifecycle|TestOOMKilled|TestUpdateContainerResources|TestContainerStats|TestStatsReadAtCallTime|TestPodSandboxMetrics|TestUserNamespacePod|TestExecSync|TestContainersSurviveHuskdRestart|TestRestartKeepsPods|TestRemoveExitedContainerLeavesNothing|TestPodRemovalTakesItsContainers|TestRuntimeInfo|TestUnifiedResources|TestCpusetResources|TestSystemdCgroupDriver)$'
RUN=${HUSK_VM_RUN:-$DEFAULT_RUN}
# TestCritest runs inside the critest groups whose calls read or write
# cgroups: containers' lifecycle, stats and OOM, pods' sandboxes and
# metrics, the security context (privileged devices, user namespaces,
# cgroup namespaces), several containers in one pod, runtime info. The
# groups it leaves to the host (images, image volumes, idempotence,
# networking, streaming, mount options, NRI's call contracts) take the same
# paths on either cgroup version. HUSK_CRITEST_FOCUS=. runs all of critest
# (241 s in the VM, 141 s on the host).
DEFAULT_CRITEST_FOCUS='\[k8s\.io\] (Container runtime|Container OOM|PodSandbox|Security Context|Multiple Containers|Runtime info)'
CRITEST_FOCUS=${HUSK_CRITEST_FOCUS:-$DEFAULT_CRITEST_FOCUS}
# conformance/kubelet: kubelet with its defaults (failCgroupV1 among them)
# and the systemd driver, running the static pod of `make test`'s.
RUN_KUBELET=${HUSK_VM_RUN_KUBELET:-^TestStaticPod\$}
KUBELET=${HUSK_KUBELET:-.tools/bin/kubelet}
# critest.test: TestCritest alone (its table tests run on the host).
RUN_CRITEST=${HUSK_VM_RUN_CRITEST:-^TestCritest\$}
TESTS=${HUSK_VM_TESTS:-bin/cgroupv2-vm}
TIMEOUT=${HUSK_VM_TIMEOUT:-1500}
TEST_TIMEOUT=${HUSK_VM_TEST_TIMEOUT:-20m}
CACHE=${HUSK_VM_CACHE:-/var/cache/husk}
LOG=${HUSK_VM_LOG:-bin/cgroupv2-vm.log}
T=.tools

log() { echo "cgroupv2-vm: $*"; }
die() { echo "cgroupv2-vm: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root (debootstrap, mkfs)"

# Debian packages: qemu, and what builds the base and the disks.
missing=""
for p in qemu-system-x86 debootstrap busybox-static cpio kmod e2fsprogs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
	log "installing$missing"
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y --no-install-recommends $missing >/dev/null ||
		{ apt-get update >/dev/null && apt-get install -y --no-install-recommends $missing >/dev/null; }
fi

# The kernel: the 6.1 image Debian's linux-image-amd64 points at today,
# pinned by its version in the cache key (a newer one makes a new base).
kpkg() { apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-6\.1\.0-[0-9]*-amd64\)$/\1/p' | head -1; }
KPKG=$(kpkg)
[ -n "$KPKG" ] || { apt-get update >/dev/null && KPKG=$(kpkg); }
[ -n "$KPKG" ] || die "apt offers no linux-image-6.1.0-*-amd64"
KVER=$(apt-cache policy "$KPKG" | awk '/Candidate:/ { print $2 }')
BBVER=$(dpkg-query -W -f='${Version}' busybox-static)

KEY=$( {
	cat scripts/vm/base.sh scripts/vm/initrd-init
	echo "$KPKG=$KVER busybox-static=$BBVER"
} | sha256sum | cut -c1-16)
BASE=$CACHE/cgroupv2-vm-$KEY
# removetree removes a directory without descending into what is mounted
# below it (a killed debootstrap leaves /proc and /sys mounted in its root).
removetree() {
	grep -o " $1/[^ ]*" /proc/mounts | sort -r | while read -r m; do umount -l "$m" || true; done
	rm -rf --one-file-system "$1"
}
# One build at a time: `make test` starts the base's build in the
# background while kubelet and the node e2e suite compile, and the run
# below waits for it here.
mkdir -p "$CACHE"
exec 9>"$CACHE/cgroupv2-vm.lock"
flock 9
if [ ! -f "$BASE/kernel" ]; then
	# What a killed build left (an interrupted one removes its own), once
	# no build can still be writing it.
	find "$CACHE" -maxdepth 1 -name 'cgroupv2-vm-*.build.*' -mmin +120 | while read -r d; do removetree "$d"; done
	log "building the VM base $BASE ($KPKG $KVER)"
	s=$(date +%s)
	scripts/vm/base.sh "$BASE" "$KPKG" "$KVER"
	log "base built in $(($(date +%s) - s)) s"
	# Bases of older keys are never used again.
	for old in "$CACHE"/cgroupv2-vm-*; do
		case $old in "$BASE" | *.build.*) ;; *) [ -f "$old/kernel" ] && removetree "$old" ;; esac
	done
fi
flock -u 9
[ "$BASE_ONLY" ] && exit 0

for f in bin/huskd bin/husk-shim bin/husk-runc bin/husk-pause "$TESTS/husktest" $T/bin/crictl $T/bin/critest $T/busybox/bin/busybox; do
	[ -e "$f" ] || die "$f is missing: run through \`make test-cgroupv2\`"
done
ls "$TESTS"/*.test >/dev/null 2>&1 || die "no test binaries in $TESTS"
if [ -e "$TESTS/kubelet.test" ]; then
	[ -x "$KUBELET" ] || die "$KUBELET is missing: scripts/kubelet.sh builds it"
fi

WORK=$(mktemp -d /var/tmp/husk-cgroupv2-vm.XXXXXX)
QEMU=""
cleanup() {
	if [ -n "$QEMU" ] && kill -0 "$QEMU" 2>/dev/null; then
		log "stopping the VM (pid $QEMU)"
		# timeout passes the TERM on to qemu, and a KILL 10 s later.
		kill "$QEMU" 2>/dev/null || true
		for _ in $(seq 15); do kill -0 "$QEMU" 2>/dev/null || break; sleep 1; done
		kill -9 "$QEMU" 2>/dev/null || true
	fi
	[ -n "${TAIL:-}" ] && kill "$TAIL" 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# The payload disk, mounted read-only at /opt/husk by husk-vm.service.
P=$WORK/payload
mkdir -p "$P/bin" "$P/tools" "$P/tests"
cp scripts/vm/guest-run.sh "$P/"
cp bin/huskd bin/husk-shim bin/husk-runc bin/husk-pause "$P/bin/"
cp $T/bin/crictl $T/bin/critest $T/busybox/bin/busybox "$P/tools/"
cp "$TESTS"/*.test "$TESTS/husktest" "$TESTS/imagebin" conformance/critest-expected "$P/tests/"
[ -e "$TESTS/kubelet.test" ] && cp -L "$KUBELET" "$P/tools/kubelet"
# One -test.run per test binary, by its name (guest-run.sh).
printf 'HUSK_VM_RUN_integration=%q\nHUSK_VM_RUN_kubelet=%q\nHUSK_VM_RUN_critest=%q\nHUSK_VM_TEST_TIMEOUT=%q\nHUSK_CRITEST_FOCUS=%q\n' "$RUN" "$RUN_KUBELET" "$RUN_CRITEST" "$TEST_TIMEOUT" "$CRITEST_FOCUS" >"$P/env"
s=$(date +%s%N)
mkfs.ext4 -q -F -L husk-payload -d "$P" "$WORK/payload.img" 1G >/dev/null
# A fresh root for every run, so that nothing of a run outlives it: sparse,
# room for the tests' images and containers.
mkfs.ext4 -q -F -L husk-root -d "$BASE/rootfs" "$WORK/root.img" 8G >/dev/null
log "disks made in $((($(date +%s%N) - s) / 1000000)) ms"

K=$(cat "$BASE/kernel")
: >"$LOG"
log "booting (kernel $K, cgroup_no_v1=all, systemd; VM killed after $TIMEOUT s)"
START=$(date +%s)
# -no-reboot: the guest's poweroff, and a kernel panic (panic=-1
# reboots), end qemu. cache=unsafe: the disks are thrown away after.
# apparmor=0: Debian's kernel enables AppArmor, and huskd then needs
# apparmor_parser for every container's default profile; this host, where
# `make test` covers AppArmor's handling, has none, and this VM is about
# cgroups. loglevel=3: the kernel's errors and warnings would cut into the
# test output on the shared console; guest-run.sh prints them after a
# failure.
# timeout: should this script be killed outright (no trap runs), the VM
# still stops a minute after its time.
timeout -k 10 $((TIMEOUT + 60)) qemu-system-x86_64 -machine q35 -accel tcg,thread=multi -cpu max -smp 2 -m 4G \
	-nodefaults -display none -monitor none -no-reboot -nic none \
	-kernel "$BASE/vmlinuz" -initrd "$BASE/initrd.gz" \
	-append "console=ttyS0 cgroup_no_v1=all systemd.unified_cgroup_hierarchy=1 panic=-1 loglevel=3 apparmor=0 systemd.show_status=error ${HUSK_VM_APPEND:-}" \
	-drive file="$WORK/root.img",if=virtio,format=raw,cache=unsafe \
	-drive file="$WORK/payload.img",if=virtio,format=raw,readonly=on \
	-serial file:"$LOG" </dev/null >"$WORK/qemu.out" 2>&1 &
QEMU=$! # timeout's PID: a TERM to it is passed on to qemu
# The console as it comes, without its carriage returns (sed -u: line by
# line, not in blocks, when the output is a file).
tail -n +1 -f --pid="$QEMU" "$LOG" | sed -u 's/\r$//' &
TAIL=$!
stopping=""
while kill -0 "$QEMU" 2>/dev/null; do
	if [ -z "$stopping" ] && [ $(($(date +%s) - START)) -ge "$TIMEOUT" ]; then
		log "the VM ran over $TIMEOUT s: stopping it"
		kill "$QEMU" 2>/dev/null || true
		stopping=1
	fi
	sleep 1
done
ELAPSED=$(($(date +%s) - START))
wait "$TAIL" 2>/dev/null || true
TAIL=""
[ -s "$WORK/qemu.out" ] && { log "qemu said:"; cat "$WORK/qemu.out"; }

CONSOLE=$(tr -d '\r' <"$LOG")
mark() { echo "$CONSOLE" | sed -n "s/^$1.*uptime=\([0-9.]*\).*/\1/p" | head -1; }
echo
log "VM ran ${ELAPSED} s; guest uptime at initrd $(mark HUSK-VM-INITRD) s, at the test service $(mark HUSK-VM-UP) s, at the first test $(mark HUSK-VM-TESTS-BEGIN) s"
echo "$CONSOLE" | grep '^HUSK-VM-CGROUP' || true
echo "$CONSOLE" | grep -E '^(--- (PASS|FAIL|SKIP)|HUSK-VM-TESTS-END)' || true
log "console copy: $LOG"
rc=$(echo "$CONSOLE" | sed -n 's/^HUSK-VM-RESULT rc=\([0-9]*\).*/\1/p' | tail -1)
if [ -z "$rc" ]; then
	log "FAIL: the VM never reported a result (HUSK-VM-RESULT)"
	exit 1
fi
if [ "$rc" -ne 0 ]; then
	log "FAIL: tests failed in the VM (rc=$rc)"
	exit 1
fi
log "PASS"
