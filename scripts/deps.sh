#!/bin/sh
# Installs what building, running and testing husk need on a Debian 12
# machine, and nothing that is already there. Run by `make run`, `make test`
# and `make bench`; safe to run again.
set -eu
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
	echo "deps.sh: husk runs containers and installs packages: run it as root" >&2
	exit 1
fi

# Debian packages: a C toolchain and libseccomp for husk-runc (static),
# util-linux and iproute2 for the tests' nsenter and ip, and what the
# images and network work uses: busybox-static, the CNI plugins.
# `deps.sh --bench` also installs Debian's containerd (1.6) and runc, which
# the benchmarks keep for reference, and builds today's peer, containerd 2.4
# with runc 1.5 (scripts/containerd2.sh, at the end).
extra=""
[ "${1:-}" = "--bench" ] && extra="containerd runc"

missing=""
for p in $extra gcc libc6-dev libseccomp-dev pkg-config util-linux iproute2 procps busybox-static containernetworking-plugins curl bzip2; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
	echo "deps.sh: installing$missing"
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y --no-install-recommends $missing ||
		{ apt-get update && apt-get install -y --no-install-recommends $missing; }
fi

command -v go >/dev/null || { echo "deps.sh: Go is not installed (see README.md)" >&2; exit 1; }

# Debian's regular busybox (it conflicts with busybox-static, so it is
# unpacked, not installed) and the glibc it needs build the test images.
if [ ! -x "$PWD/.tools/busybox/bin/busybox" ]; then
	echo "deps.sh: unpacking Debian's busybox for the test images"
	mkdir -p .tools/debs
	(cd .tools/debs && rm -f busybox_*.deb && { apt-get download busybox 2>/dev/null || { apt-get update && apt-get download busybox; }; })
	dpkg-deb -x .tools/debs/busybox_*.deb .tools/busybox
fi

# Debian's apparmor, unpacked, not installed (its service would try to
# load the host's profiles): the tests parse husk's default profile with
# its apparmor_parser, which needs no AppArmor in the kernel for that.
if [ ! -x "$PWD/.tools/apparmor/sbin/apparmor_parser" ]; then
	echo "deps.sh: unpacking Debian's apparmor for the profile tests"
	mkdir -p .tools/debs
	(cd .tools/debs && rm -f apparmor_*.deb && { apt-get download apparmor 2>/dev/null || { apt-get update && apt-get download apparmor; }; })
	dpkg-deb -x .tools/debs/apparmor_*.deb .tools/apparmor
fi

# Go tools, pinned, into .tools/bin (not on the system's PATH).
TOOLS=${TOOLS:-$PWD/.tools}
CRI_TOOLS_VERSION=v1.37.0
mkdir -p "$TOOLS/bin"
if [ "$(cat "$TOOLS/bin/.crictl.version" 2>/dev/null)" != "$CRI_TOOLS_VERSION" ] || [ ! -x "$TOOLS/bin/crictl" ]; then
	echo "deps.sh: building crictl $CRI_TOOLS_VERSION"
	GOBIN="$TOOLS/bin" go install "sigs.k8s.io/cri-tools/cmd/crictl@$CRI_TOOLS_VERSION"
	echo "$CRI_TOOLS_VERSION" >"$TOOLS/bin/.crictl.version"
fi

# staticcheck, pinned, for `make test`'s lint (built from the module
# proxy; the Go build cache makes a rebuild in a fresh clone quick).
STATICCHECK_VERSION=v0.8.2 # staticcheck 2026.2.2
if [ "$(cat "$TOOLS/bin/.staticcheck.version" 2>/dev/null)" != "$STATICCHECK_VERSION" ] || [ ! -x "$TOOLS/bin/staticcheck" ]; then
	echo "deps.sh: building staticcheck $STATICCHECK_VERSION"
	GOBIN="$TOOLS/bin" GOFLAGS= go install "honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION"
	echo "$STATICCHECK_VERSION" >"$TOOLS/bin/.staticcheck.version"
fi

# critest is a Go test binary, not a command: cri-tools' Makefile builds it
# with `go test -c` inside its own module, whose go.sum it needs.
if [ "$(cat "$TOOLS/bin/.critest.version" 2>/dev/null)" != "$CRI_TOOLS_VERSION" ] || [ ! -x "$TOOLS/bin/critest" ]; then
	echo "deps.sh: building critest $CRI_TOOLS_VERSION"
	src=$(go mod download -json "sigs.k8s.io/cri-tools@$CRI_TOOLS_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
	[ -d "$src" ] || { echo "deps.sh: cannot download sigs.k8s.io/cri-tools@$CRI_TOOLS_VERSION" >&2; exit 1; }
	(cd "$src" && GOFLAGS=-mod=mod go test -c -o "$TOOLS/bin/critest" ./cmd/critest)
	echo "$CRI_TOOLS_VERSION" >"$TOOLS/bin/.critest.version"
fi

# Today's peer for the benchmarks, built once into /var/cache/husk.
if [ "${1:-}" = "--bench" ]; then
	./scripts/containerd2.sh
fi
