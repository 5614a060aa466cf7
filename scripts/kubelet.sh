#!/bin/sh
# Builds kubelet for the kubelet conformance test (conformance/kubelet) into
# /var/cache/husk/kubelet-VERSION, outside the clone so that a fresh clone
# (CI's) does not build it again, and links it as .tools/bin/kubelet. Safe to
# run again: it does nothing when the pinned version is already there.
#
# `go install k8s.io/kubernetes/cmd/kubelet@VERSION` is refused because
# kubernetes' go.mod replaces its staging modules (k8s.io/api, client-go, ...)
# with directories of its own tree. The same modules are published on their
# own as v0.X.Y, so a scratch module that requires k8s.io/kubernetes and
# replaces each staging module with its release builds the same kubelet from
# the Go module proxy alone. The first build takes ~5 minutes on 2 cores
# (more with an empty Go build cache); a rebuild ~15 s.
set -eu
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"

KUBE_VERSION=v1.37.2
STAGING_VERSION=v0$(echo "$KUBE_VERSION" | sed 's/^v1//') # v1.37.2 -> v0.37.2
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
mkdir -p "$SRC"

# kubernetes' own go.mod lists its staging modules: every
# `k8s.io/xxx => ./staging/src/k8s.io/xxx` line.
kube_mod=$(go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",*$/\1/p')
[ -f "$kube_mod" ] || { echo "kubelet.sh: no go.mod for k8s.io/kubernetes@$KUBE_VERSION" >&2; exit 1; }
staging=$(sed -n 's#^[[:space:]]*\(k8s.io/[^[:space:]]*\) => \./staging/src/.*#\1#p' "$kube_mod")
[ -n "$staging" ] || { echo "kubelet.sh: no staging replace directives in $kube_mod" >&2; exit 1; }
echo "kubelet.sh: replacing $(echo "$staging" | wc -l) staging modules with their $STAGING_VERSION releases"

# The scratch module is rewritten each time so that a version change starts
# clean; go.sum is kept, it only ever gains verified lines.
{
	echo "module husk.local/kubelet-build"
	echo
	echo "go $(sed -n 's/^go //p' "$kube_mod")"
	echo
	echo "require k8s.io/kubernetes $KUBE_VERSION"
	echo
	echo "replace ("
	for m in $staging; do echo "	$m => $m $STAGING_VERSION"; done
	echo ")"
} >"$SRC/go.mod"

cd "$SRC"
# go get lists every module it adds: hundreds of lines, shown on failure.
echo "kubelet.sh: resolving kubelet's dependencies"
if ! go get "k8s.io/kubernetes/cmd/kubelet@$KUBE_VERSION" >go-get.log 2>&1; then
	cat go-get.log >&2
	exit 1
fi

# kubelet reports component-base's version variables (`kubelet --version`,
# and the node's kubeletVersion); without them it says v0.0.0-master.
pkg=k8s.io/component-base/version
major=$(echo "$KUBE_VERSION" | cut -d. -f1 | tr -d v)
minor=$(echo "$KUBE_VERSION" | cut -d. -f2)
ldflags="-s -w -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean -X $pkg.buildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "kubelet.sh: compiling (the first time: about 5 minutes on 2 cores)"
CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$CACHE/kubelet.tmp" k8s.io/kubernetes/cmd/kubelet
mv "$CACHE/kubelet.tmp" "$CACHE/kubelet"
link
echo "kubelet.sh: $("$TOOLS/bin/kubelet" --version)"
