#!/bin/sh
# Builds Kubernetes' node end-to-end suite (e2e_node.test, from
# k8s.io/kubernetes/test/e2e_node at the version kubelet is built from) into
# /var/cache/husk/e2e_node-VERSION, outside the clone so that a fresh clone
# does not build it again, and links it as .tools/bin/e2e_node.test. Safe to
# run again: it does nothing when the pinned version is already there.
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

link() {
	mkdir -p "$TOOLS/bin"
	ln -sfn "$BINARY" "$TOOLS/bin/e2e_node.test"
}
if [ -x "$BINARY" ]; then
	link
	exit 0
fi

echo "node-e2e-build.sh: building e2e_node.test $KUBE_VERSION into $CACHE (from the Go module proxy)"
kube_module "$CACHE/src" e2e-node-build k8s.io/kubernetes/test/e2e_node
cd "$CACHE/src"
echo "node-e2e-build.sh: compiling (the first time: about 15 minutes on 2 cores, a rebuild ~40 s)"
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
rm -f "$BINARY.tmp"
CGO_ENABLED=0 GOFLAGS=-mod=mod go test -c -vet=off -trimpath -ldflags "-s -w $(kube_ldflags)" -o "$BINARY.tmp" k8s.io/kubernetes/test/e2e_node
mv "$BINARY.tmp" "$BINARY"
link
echo "node-e2e-build.sh: $(du -h "$BINARY" | cut -f1) $BINARY"
