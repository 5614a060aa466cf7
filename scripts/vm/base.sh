#!/bin/sh
# Builds the cgroup v2 VM's base into DEST (scripts/cgroupv2-vm.sh calls it
# once per cache key; everything here is part of that key):
#   rootfs/     Debian 12 minbase + systemd, with the kernel's modules
#   vmlinuz     Debian's own kernel, KPKG at version KVER
#   initrd.gz   static busybox + the modules needed to mount the root
#   kernel      the kernel release (uname -r)
# The build goes to a temp directory next to DEST and is renamed into place
# at the end: an interrupted build never leaves a half-made cache behind.
#
# usage: base.sh DEST KPKG KVER
set -eu
DEST=$1 KPKG=$2 KVER=$3
HERE=$(cd "$(dirname "$0")" && pwd)
MIRROR=http://deb.debian.org/debian
# minbase has no init and no network tools. systemd, systemd-sysv and dbus:
# the guest boots systemd as PID 1, as a real node does (and as the
# systemd cgroup driver needs). iproute2, iptables, kmod, procps: what huskd
# and its tests run. containernetworking-plugins: the CNI plugins of
# huskd's built-in network (the host has them from scripts/deps.sh).
# busybox-static: a rescue shell.
PACKAGES=systemd,systemd-sysv,dbus,iproute2,iptables,kmod,procps,busybox-static,containernetworking-plugins

K=${KPKG#linux-image-}
mkdir -p "$(dirname "$DEST")"
TMP=$(mktemp -d "$DEST.build.XXXXXX")
chmod 0755 "$TMP" # apt-get download drops to the _apt user
cleanup() {
	# debootstrap mounts /proc and /sys in the root while it works: an
	# interrupted build may leave them, and rm must not descend into them.
	grep -o " $TMP/[^ ]*" /proc/mounts | sort -r | while read -r m; do umount -l "$m" || true; done
	rm -rf --one-file-system "$TMP"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP
R=$TMP/rootfs

echo "base.sh: debootstrap bookworm (a few minutes)"
debootstrap --variant=minbase --include="$PACKAGES" bookworm "$R" "$MIRROR" >"$TMP/debootstrap.log" 2>&1 ||
	{ tail -30 "$TMP/debootstrap.log" >&2; exit 1; }

echo "base.sh: kernel $KPKG $KVER"
mkdir -p "$TMP/kpkg"
(cd "$TMP/kpkg" && apt-get -o APT::Sandbox::User=root download -q "$KPKG=$KVER" >/dev/null)
dpkg-deb -x "$TMP"/kpkg/*.deb "$TMP/kx"
cp "$TMP/kx/boot/vmlinuz-$K" "$TMP/vmlinuz"
mkdir -p "$R/lib/modules"
cp -a "$TMP/kx/lib/modules/$K" "$R/lib/modules/"
# Drivers no VM of this kind loads (graphics, sound, radios, USB...): a
# third of the modules' size, copied by mkfs on every run.
for d in drivers/gpu drivers/media drivers/net/wireless drivers/infiniband drivers/staging drivers/iio drivers/usb drivers/bluetooth drivers/hid sound net/bluetooth net/wireless net/mac80211; do
	rm -rf "$R/lib/modules/$K/kernel/$d"
done
depmod -b "$R" "$K"
# The guest's modprobe finds them, also when the kernel asks for one
# (overlay, bridge, veth, nf_tables load on first use).

echo "base.sh: initrd"
I=$TMP/initrd
mkdir -p "$I/bin" "$I/lib/modules"
cp /bin/busybox "$I/bin/busybox" # Debian's busybox-static: no libraries needed
cp "$HERE/initrd-init" "$I/init"
chmod 0755 "$I/init"
# The host's modprobe, pointed at the root, gives the load order with every
# dependency (crc32c is ext4's soft dependency: named, as the loader of
# a soft dependency is modprobe, which the initrd does not have).
modprobe -d "$R" -S "$K" --show-depends -a virtio_pci virtio_blk crc32c_generic ext4 |
	awk '$1 == "insmod" && !seen[$2]++ { print $2 }' >"$TMP/modpaths"
: >"$I/modules"
while read -r p; do
	cp "$p" "$I/lib/modules/"
	echo "/lib/modules/$(basename "$p")" >>"$I/modules"
done <"$TMP/modpaths"
(cd "$I" && find . | cpio -o -H newc --quiet | gzip -1) >"$TMP/initrd.gz"

echo "base.sh: guest configuration"
echo husk-vm >"$R/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\thusk-vm\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$R/etc/hosts"
# A machine ID makes this no "first boot" (no systemd-firstboot prompt).
echo 6875736b2d766d2d6367726f75707632 >"$R/etc/machine-id"
# No fstab entries: the initrd mounted the root read-write, and without
# udev systemd would wait 90 s for any device named in fstab.
: >"$R/etc/fstab"
mkdir -p "$R/opt/husk"
# The guest boots into husk-vm.target: basic.target (journald, D-Bus) and
# the one service that runs what the host put on the second disk
# (/dev/vdb: guest-run.sh and the binaries), prints to the serial console
# and powers the VM off, whatever the outcome.
cat >"$R/etc/systemd/system/husk-vm.target" <<'UNIT'
[Unit]
Description=husk's cgroup v2 test run
Requires=basic.target husk-vm.service
After=basic.target husk-vm.service
AllowIsolate=yes
UNIT
cat >"$R/etc/systemd/system/husk-vm.service" <<'UNIT'
[Unit]
Description=husk's tests on cgroup v2 (payload from scripts/cgroupv2-vm.sh)
After=basic.target dbus.socket
SuccessAction=poweroff-force
FailureAction=poweroff-force

[Service]
Type=oneshot
ExecStartPre=/bin/mount -o ro /dev/vdb /opt/husk
ExecStart=/opt/husk/guest-run.sh
StandardOutput=tty
StandardError=inherit
TTYPath=/dev/ttyS0
TimeoutStartSec=infinity
UNIT
ln -sf /etc/systemd/system/husk-vm.target "$R/etc/systemd/system/default.target"
ln -sf /dev/null "$R/etc/systemd/system/systemd-firstboot.service"
# Smaller cache, faster mkfs per run.
rm -rf "$R"/var/cache/apt/archives/*.deb "$R"/var/lib/apt/lists/* "$R"/usr/share/doc "$R"/usr/share/man "$R"/usr/share/locale
echo "$K" >"$TMP/kernel"

rm -rf "$TMP/kx" "$TMP/kpkg" "$I" "$TMP/modpaths" "$TMP/debootstrap.log"
# rename(2) onto an existing DEST fails: a build that ran alongside won,
# and its result is as good as this one.
mv -T "$TMP" "$DEST" || { [ -f "$DEST/kernel" ] && exit 0; exit 1; }
trap - EXIT
