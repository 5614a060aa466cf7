# Sourced (not run) by scripts/kubelet.sh and scripts/node-e2e.sh: the
# Kubernetes version husk is tested against, and the scratch Go module both
# build their Kubernetes programs in.
#
# `go install k8s.io/kubernetes/...@VERSION` is refused because kubernetes'
# go.mod replaces its staging modules (k8s.io/api, client-go, ...) with
# directories of its own tree. The same modules are published on their own
# as v0.X.Y, so a scratch module that requires k8s.io/kubernetes and replaces
# each staging module with its release builds the same programs from the Go
# module proxy alone.

KUBE_VERSION=v1.37.2
STAGING_VERSION=v0$(echo "$KUBE_VERSION" | sed 's/^v1//') # v1.37.2 -> v0.37.2

# kube_module DIR NAME PACKAGE writes the scratch module husk.local/NAME into
# DIR and resolves PACKAGE's dependencies in it (`go get`, whose output goes
# to DIR/go-get.log and is shown on failure). The go.mod is rewritten each
# time so that a version change starts clean; go.sum is kept, it only ever
# gains verified lines.
kube_module() {
	km_dir=$1 km_name=$2 km_pkg=$3
	mkdir -p "$km_dir"
	# kubernetes' own go.mod lists its staging modules: every
	# `k8s.io/xxx => ./staging/src/k8s.io/xxx` line.
	km_mod=$(go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",*$/\1/p')
	[ -f "$km_mod" ] || { echo "kube-module.sh: no go.mod for k8s.io/kubernetes@$KUBE_VERSION" >&2; return 1; }
	km_staging=$(sed -n 's#^[[:space:]]*\(k8s.io/[^[:space:]]*\) => \./staging/src/.*#\1#p' "$km_mod")
	[ -n "$km_staging" ] || { echo "kube-module.sh: no staging replace directives in $km_mod" >&2; return 1; }
	echo "kube-module.sh: replacing $(echo "$km_staging" | wc -l) staging modules with their $STAGING_VERSION releases"
	{
		echo "module husk.local/$km_name"
		echo
		echo "go $(sed -n 's/^go //p' "$km_mod")"
		echo
		echo "require k8s.io/kubernetes $KUBE_VERSION"
		echo
		echo "replace ("
		for m in $km_staging; do echo "	$m => $m $STAGING_VERSION"; done
		echo ")"
	} >"$km_dir/go.mod"
	echo "kube-module.sh: resolving $km_pkg's dependencies"
	if ! (cd "$km_dir" && go get "$km_pkg@$KUBE_VERSION") >"$km_dir/go-get.log" 2>&1; then
		cat "$km_dir/go-get.log" >&2
		return 1
	fi
}

# kube_ldflags prints the -ldflags that set component-base's version
# variables: kubelet reports them (`kubelet --version`, the node's
# kubeletVersion), and without them says v0.0.0-master.
kube_ldflags() {
	km_v=k8s.io/component-base/version
	km_major=$(echo "$KUBE_VERSION" | cut -d. -f1 | tr -d v)
	km_minor=$(echo "$KUBE_VERSION" | cut -d. -f2)
	echo "-X $km_v.gitVersion=$KUBE_VERSION -X $km_v.gitMajor=$km_major -X $km_v.gitMinor=$km_minor -X $km_v.gitTreeState=clean -X $km_v.buildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
}
