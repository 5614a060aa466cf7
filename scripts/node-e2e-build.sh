#!/bin/sh
# Builds Kubernetes' node end-to-end suite (e2e_node.test, from
# k8s.io/kubernetes/test/e2e_node at the version kubelet is built from) into
# /var/cache/husk/e2e_node-VERSION, outside the clone so that a fresh clone
# does not build it again, and links it as .tools/bin/e2e_node.test; and,
# into programs/ there (linked as .tools/e2e_node-programs), the test
# images' Go programs from the same module (agnhost, nonewprivs'
# nnp, sample-device-plugin; conformance/nodee2e/images.go). Safe to run
# again: it does nothing when the pinned version is already there.
#
# It is built in the same kind of scratch module as kubelet
# (scripts/kube-module.sh), with `go test -c`: the suite is a test package.
# The first build took 17 minutes here (2 cores shared with a VM, the Go
# build cache warm with kubelet's packages, vet included then); the binary is
# ~140 MB (stripped).
set -eu
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
. ./scripts/kube-module.sh

TOOLS=${TOOLS:-$PWD/.tools}
# The cache is keyed by the version, the only input besides the module
# proxy's (checksummed) content.
CACHE=${HUSK_CACHE:-/var/cache/husk}/e2e_node-$KUBE_VERSION
BINARY="$CACHE/e2e_node.test"
PROGRAMS="$CACHE/programs"
# The ginkgo CLI of the suite's ginkgo version runs its specs in parallel
# processes (the suite alone runs them one at a time).
GINKGO="$CACHE/ginkgo"
# The test images' programs, by package under k8s.io/kubernetes/test/images.
PROGRAM_PKGS="agnhost nonewprivs sample-device-plugin"

link() {
	mkdir -p "$TOOLS/bin"
	ln -sfn "$BINARY" "$TOOLS/bin/e2e_node.test"
	ln -sfn "$PROGRAMS" "$TOOLS/e2e_node-programs"
	ln -sfn "$GINKGO" "$TOOLS/bin/ginkgo"
	ln -sfn "$KITTEN" "$TOOLS/e2e_node-kitten"
}
# Data files of the test images, from the same module (test/images/kitten:
# the image volume specs' image).
KITTEN="$CACHE/kitten"
if [ -x "$BINARY" ] && [ -x "$PROGRAMS/busybox" ] && [ -x "$GINKGO" ] && [ -f "$KITTEN/data.json" ]; then
	link
	exit 0
fi

echo "node-e2e-build.sh: building e2e_node.test $KUBE_VERSION into $CACHE (from the Go module proxy)"
kube_module "$CACHE/src" e2e-node-build k8s.io/kubernetes/test/e2e_node
cd "$CACHE/src"
# -mod=mod: the suite's test files import packages the non-test files do
# not, whose modules `go get` did not add. -vet=off: `go test -c` vets the
# suite's package after linking it, minutes spent checking upstream's code.
# Static, as kubelet is (CGO_ENABLED=0): that leaves out one file,
# node_problem_detector_linux.go (`//go:build cgo && linux`), whose one spec
# is Serial and needs node-problem-detector; the suite then holds 1,275
# specs where upstream's cgo build holds 1,276.
# The binary is written under a temporary name and renamed into place, so an
# interrupted build leaves no binary that the check above would take for a
# finished one.
if [ ! -x "$BINARY" ]; then
	echo "node-e2e-build.sh: compiling the suite (the first time: about 15 minutes on 2 cores, a rebuild ~40 s)"
	rm -f "$BINARY.tmp"
	CGO_ENABLED=0 GOFLAGS=-mod=mod go test -c -vet=off -trimpath -ldflags "-s -w $(kube_ldflags)" -o "$BINARY.tmp" k8s.io/kubernetes/test/e2e_node
	mv "$BINARY.tmp" "$BINARY"
fi

if [ ! -x "$GINKGO" ]; then
	CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -o "$GINKGO.tmp" github.com/onsi/ginkgo/v2/ginkgo
	mv "$GINKGO.tmp" "$GINKGO"
fi

kube_dir=$(GOFLAGS=-mod=mod go list -m -f '{{.Dir}}' k8s.io/kubernetes)
if [ ! -f "$KITTEN/data.json" ]; then
	rm -rf "$KITTEN.tmp"
	mkdir -p "$KITTEN.tmp"
	cp "$kube_dir/test/images/kitten/html/data.json" "$kube_dir/test/images/kitten/html/kitten.jpg" "$KITTEN.tmp/"
	chmod 0644 "$KITTEN.tmp"/*
	rm -rf "$KITTEN"
	mv "$KITTEN.tmp" "$KITTEN"
fi
if [ -x "$PROGRAMS/busybox" ]; then
	link
	exit 0
fi

# The programs are built as upstream's image builds do (test/images/
# image-util.sh: static, CGO_ENABLED=0; agnhost with its VERSION as
# main.Version), into a directory renamed into place when all are there.

echo "node-e2e-build.sh: compiling the test images' programs ($PROGRAM_PKGS)"
agnhost_version=$(cat "$kube_dir/test/images/agnhost/VERSION")
rm -rf "$PROGRAMS.tmp"
mkdir -p "$PROGRAMS.tmp"
for p in $PROGRAM_PKGS; do
	ldflags="-s -w"
	[ "$p" = agnhost ] && ldflags="$ldflags -X main.Version=$agnhost_version"
	CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "$ldflags" -o "$PROGRAMS.tmp/$p" "k8s.io/kubernetes/test/images/$p"
done

# agnhost's TLS certificate and key (upstream's image ADDs them from
# porter/): the https servers of the probe and lifecycle hook specs.
cp "$kube_dir/test/images/agnhost/porter/localhost.crt" "$kube_dir/test/images/agnhost/porter/localhost.key" "$PROGRAMS.tmp/"

# busybox 1.37.0, the version of the suite's busybox image (Docker Hub's
# busybox:1.37.0, glibc, default configuration), built from Debian's
# source of it (the orig tarball of trixie's 1.37.0-6, checked against the
# sha256 its .dsc gives) with busybox's default configuration: Debian's
# bookworm busybox (1.35.0, Debian's configuration) lacks applets the specs
# run (nmeter, top) and its ash drops environment variables whose names
# are not shell identifiers (the ConfigMap and Secret env specs' data-1).
BUSYBOX_SRC=busybox_1.37.0.orig.tar.bz2
BUSYBOX_SHA256=3311dff32e746499f4df0d5df04d7eb396382d7e108bb9250e7b519b837043a4
echo "node-e2e-build.sh: building busybox 1.37.0 from Debian's source (about 2 minutes)"
bb_dir=$(mktemp -d)
curl -fsS --max-time 300 -o "$bb_dir/$BUSYBOX_SRC" "http://deb.debian.org/debian/pool/main/b/busybox/$BUSYBOX_SRC"
echo "$BUSYBOX_SHA256  $bb_dir/$BUSYBOX_SRC" | sha256sum -c --quiet
tar -C "$bb_dir" -xjf "$bb_dir/$BUSYBOX_SRC"
(
	cd "$bb_dir/busybox-1.37.0"
	make defconfig >/dev/null
	make -j"$(nproc)" busybox >build.log 2>&1 || { tail -20 build.log; exit 1; }
)
cp "$bb_dir/busybox-1.37.0/busybox" "$PROGRAMS.tmp/busybox"
rm -rf "$bb_dir"

rm -rf "$PROGRAMS"
mv "$PROGRAMS.tmp" "$PROGRAMS"
link
echo "node-e2e-build.sh: $(du -h "$BINARY" | cut -f1) $BINARY"
echo "node-e2e-build.sh: agnhost $("$PROGRAMS/agnhost" --version | sed 's/.* //'), $PROGRAMS: $(ls "$PROGRAMS" | tr '\n' ' ')"
