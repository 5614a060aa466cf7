#!/bin/sh
# Builds today's peer for `make bench` (issue 19): containerd v2.4.2 (the
# daemon and its containerd-shim-runc-v2) and runc v1.5.3, from the Go module
# proxy, into /var/cache/husk/containerd-VERSION-runc-VERSION/bin, outside the
# clone so that a fresh clone does not build them again, and links that
# directory as .tools/containerd2. Safe to run again: it does nothing when the
# pinned versions are already there.
#
# Each is built in a scratch module that requires it (as scripts/kubelet.sh
# does): the module zips carry no vendor directory, and a module cache
# directory is read-only, so `go build` inside it could not record a missing
# go.sum line. One scratch module each, so that neither raises the other's
# dependencies. The first build takes ~9 minutes on 2 cores; it runs under
# `nice` because the machine is shared.
set -eu
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"

CONTAINERD_VERSION=v2.4.2
RUNC_VERSION=v1.5.3

TOOLS=${TOOLS:-$PWD/.tools}
# Keyed by the versions, the only inputs besides the module proxy's
# (checksummed) content.
CACHE=${HUSK_CACHE:-/var/cache/husk}/containerd-$CONTAINERD_VERSION-runc-$RUNC_VERSION

link() {
	mkdir -p "$TOOLS"
	ln -sfn "$CACHE/bin" "$TOOLS/containerd2"
}
if [ -x "$CACHE/bin/containerd" ] && [ -x "$CACHE/bin/containerd-shim-runc-v2" ] && [ -x "$CACHE/bin/runc" ]; then
	link
	exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
	echo "containerd2.sh: the cache is under /var/cache/husk: run it as root" >&2
	exit 1
fi

# runc's seccomp support is cgo against libseccomp (as scripts/deps.sh
# installs it; checked again here for a direct run).
missing=""
for p in gcc libc6-dev libseccomp-dev pkg-config; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
	echo "containerd2.sh: installing$missing"
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y --no-install-recommends $missing ||
		{ apt-get update && apt-get install -y --no-install-recommends $missing; }
fi

# scratch_module DIR MODULE VERSION PACKAGE... writes a module requiring
# MODULE@VERSION into DIR and resolves PACKAGEs' dependencies there. go.mod is
# rewritten each time; go.sum is kept (it only gains verified lines).
scratch_module() {
	sm_dir=$1 sm_mod=$2 sm_version=$3
	shift 3
	mkdir -p "$sm_dir"
	sm_gomod=$(go mod download -json "$sm_mod@$sm_version" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",*$/\1/p')
	[ -f "$sm_gomod" ] || { echo "containerd2.sh: cannot download $sm_mod@$sm_version" >&2; return 1; }
	printf 'module husk.local/%s\n\ngo %s\n\nrequire %s %s\n' \
		"$(basename "$sm_dir")" "$(sed -n 's/^go //p' "$sm_gomod")" "$sm_mod" "$sm_version" >"$sm_dir/go.mod"
	for sm_pkg in "$@"; do
		if ! (cd "$sm_dir" && go get "$sm_pkg@$sm_version") >>"$sm_dir/go-get.log" 2>&1; then
			cat "$sm_dir/go-get.log" >&2
			return 1
		fi
	done
}

mkdir -p "$CACHE/bin"
CTRD=github.com/containerd/containerd/v2
RUNC=github.com/opencontainers/runc
echo "containerd2.sh: building containerd $CONTAINERD_VERSION and runc $RUNC_VERSION into $CACHE (from the Go module proxy; the first time about 9 minutes on 2 cores)"
scratch_module "$CACHE/src/containerd" "$CTRD" "$CONTAINERD_VERSION" "$CTRD/cmd/containerd" "$CTRD/cmd/containerd-shim-runc-v2"
scratch_module "$CACHE/src/runc" "$RUNC" "$RUNC_VERSION" "$RUNC"

# The ldflags set what `containerd --version` and the CRI Version RPC report,
# as containerd's Makefile does. no_btrfs: no btrfs headers here, and the
# benchmark uses overlayfs. The shim is static, as containerd releases it.
ctrd_ldflags="-s -w -X $CTRD/version.Version=$CONTAINERD_VERSION -X $CTRD/version.Revision=$CONTAINERD_VERSION -X $CTRD/version.Package=$CTRD"
(
	cd "$CACHE/src/containerd"
	export GOFLAGS=-mod=mod CGO_ENABLED=0
	nice -n 10 go build -trimpath -tags no_btrfs -ldflags "$ctrd_ldflags" -o "$CACHE/bin/containerd.tmp" "$CTRD/cmd/containerd"
	nice -n 10 go build -trimpath -tags no_btrfs -ldflags "$ctrd_ldflags" -o "$CACHE/bin/containerd-shim-runc-v2.tmp" "$CTRD/cmd/containerd-shim-runc-v2"
)
# runc: seccomp (cgo, libseccomp) as its Makefile builds it, without
# libpathrs (a Rust library Debian 12 does not ship; runc falls back to its
# Go pathrs-lite).
(
	cd "$CACHE/src/runc"
	export GOFLAGS=-mod=mod CGO_ENABLED=1
	nice -n 10 go build -trimpath -buildmode=pie -tags "seccomp urfave_cli_no_docs" -ldflags "-X main.gitCommit=$RUNC_VERSION" -o "$CACHE/bin/runc.tmp" "$RUNC"
)
for b in containerd containerd-shim-runc-v2 runc; do mv "$CACHE/bin/$b.tmp" "$CACHE/bin/$b"; done
link
echo "containerd2.sh: $("$CACHE/bin/containerd" --version); $("$CACHE/bin/runc" --version | head -1)"
