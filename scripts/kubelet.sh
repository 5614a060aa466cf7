#!/bin/sh
# Builds kubelet for the kubelet conformance test (conformance/kubelet) into
# /var/cache/husk/kubelet-VERSION, outside the clone so that a fresh clone
# (CI's) does not build it again, and links it as .tools/bin/kubelet. Safe to
# run again: it does nothing when the pinned version is already there.
#
# It is built in a scratch module that requires k8s.io/kubernetes
# (scripts/kube-module.sh says why). The first build takes ~5 minutes on 2
# cores (more with an empty Go build cache); a rebuild ~15 s.
set -eu
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
. ./scripts/kube-module.sh

TOOLS=${TOOLS:-$PWD/.tools}
# The cache is keyed by the version, the only input besides the module
# proxy's (checksummed) content.
CACHE=${HUSK_CACHE:-/var/cache/husk}/kubelet-$KUBE_VERSION
SRC="$CACHE/src"

link() {
	mkdir -p "$TOOLS/bin"
	ln -sfn "$CACHE/kubelet" "$TOOLS/bin/kubelet"
}
if [ -x "$CACHE/kubelet" ]; then
	link
	exit 0
fi

echo "kubelet.sh: building kubelet $KUBE_VERSION into $CACHE (from the Go module proxy)"
kube_module "$SRC" kubelet-build k8s.io/kubernetes/cmd/kubelet
cd "$SRC"
echo "kubelet.sh: compiling (the first time: about 5 minutes on 2 cores)"
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w $(kube_ldflags)" -o "$CACHE/kubelet.tmp" k8s.io/kubernetes/cmd/kubelet
mv "$CACHE/kubelet.tmp" "$CACHE/kubelet"
link
echo "kubelet.sh: $("$TOOLS/bin/kubelet" --version)"
