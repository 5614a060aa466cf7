# husk — see README.md. `make run` and `make test` are the two commands a
# newcomer needs; everything they depend on is installed by scripts/deps.sh.

# Debian's machines of this kind keep Go in /usr/local/go.
export PATH := $(PATH):/usr/local/go/bin
GO        ?= go
PREFIX    ?= /usr/local
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
BIN       := bin
TOOLS     := $(CURDIR)/.tools

# husk-runc needs cgo (libcontainer's nsenter) and is linked statically, as
# runc's releases are: it is exec'd for every container operation, and a
# static binary pays no dynamic loading. netgo and osusergo keep glibc's NSS
# out of a static link. huskd and husk-shim are pure Go.
RUNC_TAGS    := seccomp netgo osusergo
RUNC_LDFLAGS := -s -w -X main.version=$(VERSION) -extldflags -static
GO_LDFLAGS   := -s -w -X main.version=$(VERSION)

.PHONY: all build deps run install test conformance bench bench-node clean fuzz race-build test-cgroupv2 node-e2e-build node-e2e node-e2e-quick node-e2e-serial soak

all: build

build: $(BIN)/huskd $(BIN)/husk-shim $(BIN)/husk-runc $(BIN)/husk-pause

# nri_no_wasm: NRI plugins come over the socket or as executables; the
# WebAssembly runtime for .wasm plugins would add megabytes to huskd.
HUSKD_TAGS = nri_no_wasm

$(BIN)/huskd: FORCE
	CGO_ENABLED=0 $(GO) build -trimpath -tags '$(HUSKD_TAGS)' -ldflags '$(GO_LDFLAGS)' -o $@ ./cmd/huskd

$(BIN)/husk-shim: FORCE
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(GO_LDFLAGS)' -o $@ ./cmd/husk-shim

$(BIN)/husk-runc: FORCE
	CGO_ENABLED=1 $(GO) build -trimpath -tags '$(RUNC_TAGS)' -ldflags '$(RUNC_LDFLAGS)' -o $@ ./cmd/husk-runc

# The pause is C for the reason Kubernetes' is: a Go runtime costs ~640 KiB
# per pod, this costs ~50 KiB.
$(BIN)/husk-pause: pause/pause.c
	@mkdir -p $(BIN)
	$(CC) -Os -static -Wall -Werror -DVERSION='"$(VERSION)"' -o $@ pause/pause.c
	strip $@

FORCE:

deps:
	./scripts/deps.sh

run: deps build
	./$(BIN)/huskd

install: build
	install -D -m 0755 $(BIN)/huskd $(DESTDIR)$(PREFIX)/bin/huskd
	install -D -m 0755 $(BIN)/husk-shim $(DESTDIR)$(PREFIX)/bin/husk-shim
	install -D -m 0755 $(BIN)/husk-runc $(DESTDIR)$(PREFIX)/bin/husk-runc
	install -D -m 0755 $(BIN)/husk-pause $(DESTDIR)$(PREFIX)/bin/husk-pause
	install -D -m 0644 packaging/husk.service $(DESTDIR)/etc/systemd/system/husk.service
	@if [ ! -e $(DESTDIR)/etc/husk/config.toml ]; then \
		install -D -m 0644 packaging/config.toml $(DESTDIR)/etc/husk/config.toml; \
	else echo "keeping existing /etc/husk/config.toml"; fi

# Every test CI runs: table tests; integration and end-to-end tests that
# start real huskds (as root) from ./bin and drive them as crictl does; a
# real kubelet (built by scripts/kubelet.sh: ~5 minutes the first time,
# seconds after) running a static pod; critest; the node e2e suite's subset
# (node-e2e-quick); and the cgroup v2 VM (test-cgroupv2).
TEST_ENV := HUSK_BIN=$(CURDIR)/$(BIN) HUSK_CRICTL=$(TOOLS)/bin/crictl HUSK_BUSYBOX=$(TOOLS)/busybox/bin/busybox HUSK_CRITEST=$(TOOLS)/bin/critest HUSK_KUBELET=$(TOOLS)/bin/kubelet HUSK_APPARMOR=$(TOOLS)/apparmor

# The unit tests run under the race detector; the integration tests once,
# against a huskd and husk-shim built with -race (husk-runc and the pause
# are those of bin/), and huskdtest fails a test whose huskd or shims
# reported a race. critest and the tests that measure huskd's memory
# (HUSK_RELEASE_BIN) run the release binaries.
# bin-race/huskd alone has the fault points (internal/faults, tag
# husk_faults) at which TestKillPoints crashes it; bin/huskd has none.
# critest runs last and alone: its pods and the other tests' would
# compete for the machine's two cores.
RACE_BIN      := bin-race
RACE_TEST_ENV := $(subst HUSK_BIN=$(CURDIR)/$(BIN),HUSK_BIN=$(CURDIR)/$(RACE_BIN) HUSK_RELEASE_BIN=$(CURDIR)/$(BIN),$(TEST_ENV))
UNIT_PKGS      = $$($(GO) list ./... | grep -v '/conformance/')
INTEGRATION_PKGS = $$($(GO) list ./conformance/... | grep -v '/conformance/critest$$')

# What the tests need is built first; on a new machine (~35 minutes) the
# cgroup v2 VM's base is built beside kubelet and the node e2e suite, and
# test-cgroupv2 waits for it (scripts/cgroupv2-vm.sh holds a lock).
test: deps build race-build
	@mkdir -p $(BIN)
	./scripts/cgroupv2-vm.sh --base >$(BIN)/cgroupv2-vm-base.log 2>&1 &
	./scripts/kubelet.sh
	./scripts/node-e2e-build.sh
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
		if [ -n "$$unformatted" ]; then echo "not gofmt'ed: $$unformatted" >&2; exit 1; fi
	$(GO) vet ./...
	$(TOOLS)/bin/staticcheck ./...
	$(TEST_ENV) CGO_ENABLED=1 $(GO) test -race -count=1 -timeout 25m $(UNIT_PKGS)
	$(RACE_TEST_ENV) $(GO) test -count=1 -timeout 30m $(INTEGRATION_PKGS)
	$(MAKE) --no-print-directory fuzz
	$(MAKE) --no-print-directory conformance
	$(MAKE) --no-print-directory node-e2e-quick
	$(MAKE) --no-print-directory test-cgroupv2

race-build: build
	@mkdir -p $(RACE_BIN)
	CGO_ENABLED=1 $(GO) build -race -trimpath -tags '$(HUSKD_TAGS) husk_faults' -ldflags '-X main.version=$(VERSION)-race' -o $(RACE_BIN)/huskd ./cmd/huskd
	CGO_ENABLED=1 $(GO) build -race -trimpath -ldflags '-X main.version=$(VERSION)-race' -o $(RACE_BIN)/husk-shim ./cmd/husk-shim
	ln -sf ../$(BIN)/husk-runc $(RACE_BIN)/husk-runc
	ln -sf ../$(BIN)/husk-pause $(RACE_BIN)/husk-pause

# Fuzz targets `make test` runs for FUZZTIME each: one "package:Target" a
# line. (`go test` takes one -fuzz target at a time.)
FUZZTIME ?= 10s
FUZZ_TARGETS += ./image/layer:FuzzUnpack
FUZZ_TARGETS += ./image/hosts:FuzzParse
FUZZ_TARGETS += ./image/layer:FuzzResolveInRoot
FUZZ_TARGETS += ./cri:FuzzValidateRunPodSandbox
FUZZ_TARGETS += ./cri:FuzzValidateCreateContainer

# -fuzzminimizetime 0x: a short run has no time to spend minimising every
# new input (the default, 60s each, stalls a 10s run). Go 1.26's fuzz
# coordinator can fail a run that found nothing with a bare "context
# deadline exceeded" when its time is up on a loaded machine (go.dev/issue/
# 75804, fixed in Go 1.27): that, and only that, is reported and passed.
fuzz:
	@for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t#*:}; \
		echo "fuzz $$name ($$pkg, $(FUZZTIME))"; \
		out=$$($(GO) test -run '^$$' -fuzz "^$$name$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 0x $$pkg 2>&1); rc=$$?; \
		if [ $$rc -ne 0 ]; then \
			if echo "$$out" | grep -q 'context deadline exceeded' && ! echo "$$out" | grep -q 'Failing input written'; then \
				echo "$$name: the Go 1.26 fuzz coordinator's end-of-run race (go.dev/issue/75804), no failing input"; \
			else echo "$$out" >&2; exit 1; fi; \
		fi; \
	done

# critest (cri-tools v1.37.0) against huskd, with the ratchet of
# conformance/critest-expected; prints the counts per group.
conformance: deps build
	$(TEST_ENV) $(GO) test -count=1 -v -timeout 20m ./conformance/critest/

# Kubernetes' node end-to-end suite (e2e_node.test v1.37.2), built by
# scripts/node-e2e-build.sh from the Go module proxy into
# /var/cache/husk/e2e_node-v1.37.2 (~17 minutes the first time, nothing
# after) with the ginkgo CLI, busybox 1.37.0 and the test images' Go
# programs. node-e2e-build builds and checks it (its dry run's counts, the
# images); node-e2e runs the whole selection against huskd (kubelet, an
# API server and etcd started by the suite; the images served offline
# under their public names), 8 specs at a time, with the ratchet of
# conformance/node-e2e-expected; `make test` runs the NodeConformance
# subset NODE_E2E_QUICK_SKIP leaves.
NODE_E2E_ENV := HUSK_E2E_NODE=$(TOOLS)/bin/e2e_node.test HUSK_GINKGO=$(TOOLS)/bin/ginkgo HUSK_E2E_NODE_PROGRAMS=$(TOOLS)/e2e_node-programs HUSK_E2E_NODE_KITTEN=$(TOOLS)/e2e_node-kitten

node-e2e-build: deps build
	./scripts/node-e2e-build.sh
	$(TEST_ENV) $(NODE_E2E_ENV) $(GO) test -count=1 -v -run 'TestDryRun|TestPrograms|TestBuild' ./conformance/nodee2e/

node-e2e: node-e2e-build
	./scripts/kubelet.sh
	$(TEST_ENV) $(NODE_E2E_ENV) $(GO) test -count=1 -v -timeout 3h -run '^TestNodeE2E$$' ./conformance/kubelet/

# The suite's Serial specs, one at a time (TestNodeE2ESerial), but those
# that cannot run here (serialHostSkips); hours, and not part of node-e2e
# until its skips are complete.
node-e2e-serial: node-e2e-build
	./scripts/kubelet.sh
	$(TEST_ENV) $(NODE_E2E_ENV) $(GO) test -count=1 -v -timeout 5h -run '^TestNodeE2ESerial$$' ./conformance/kubelet/

# The subset `make test` runs (11 minutes here): the selection without the spec
# groups that mostly wait out probes, restarts and grace periods (probes,
# device plugin failures, mirror pods, sleep hooks), the two that need
# what this host lacks (the Summary API's system containers and PSI;
# cAdvisor's metrics of them), and the six ConfigMap/Secret "updates should
# be reflected in volume" specs, which wait out kubelet's volume sync
# (~70 s each) and exercise kubelet, not the runtime.
NODE_E2E_QUICK_SKIP := \[sig-node\] (Probing container|Probing restartable init container|Device Plugin Failures|MirrorPod|Summary API|Lifecycle Sleep Hook|ContainerMetrics)|updates should be reflected in volume

node-e2e-quick: node-e2e-build
	./scripts/kubelet.sh
	$(TEST_ENV) $(NODE_E2E_ENV) HUSK_E2E_NODE_FOCUS='\[NodeConformance\]' HUSK_E2E_NODE_SKIP='$(NODE_E2E_QUICK_SKIP)' $(GO) test -count=1 -v -timeout 40m -run '^TestNodeE2E$$' ./conformance/kubelet/

# husk's cgroup v2 paths, tested in a VM (this host is cgroup v1): Debian
# 12 with systemd as PID 1 under qemu, its base built once and cached in
# /var/cache/husk (scripts/cgroupv2-vm.sh). The guest has no Go and is
# 15-30x slower than the host: the test binaries are compiled here, static
# (CGO_ENABLED=0), and HUSK_VM_RUN chooses the integration tests run
# inside, HUSK_VM_RUN_KUBELET the kubelet tests (kubelet, static, runs
# there with the systemd driver).
VM_TESTS := $(BIN)/cgroupv2-vm

test-cgroupv2: deps build
	./scripts/kubelet.sh
	@mkdir -p $(VM_TESTS)
	CGO_ENABLED=0 $(GO) test -c -o $(VM_TESTS)/integration.test ./conformance/integration
	CGO_ENABLED=0 $(GO) test -c -o $(VM_TESTS)/critest.test ./conformance/critest
	CGO_ENABLED=0 $(GO) test -c -o $(VM_TESTS)/kubelet.test ./conformance/kubelet
	CGO_ENABLED=0 $(GO) build -o $(VM_TESTS)/husktest ./conformance/images/husktest
	CGO_ENABLED=0 $(GO) build -o $(VM_TESTS)/imagebin ./conformance/critest/imagebin
	HUSK_VM_TESTS=$(VM_TESTS) HUSK_KUBELET=$(TOOLS)/bin/kubelet ./scripts/cgroupv2-vm.sh

# The churn soak (issue 18.2): 2,000 pod lifecycles (two containers, exec
# probes, logs each) against the release huskd, with huskd's RSS,
# goroutines and descriptors every 100 cycles; `make test` runs 200.
# HUSK_SOAK_HEAP_DIR=dir keeps huskd's heap profiles (after the warm-up and
# every 100 cycles) for `go tool pprof -base`.
SOAK_CYCLES ?= 2000

soak: deps build
	$(TEST_ENV) HUSK_SOAK_CYCLES=$(SOAK_CYCLES) $(GO) test -count=1 -v -timeout 3h -run '^TestSoak$$' ./conformance/integration/

# Benchmarks: speed and memory, measured, never asserted; husk side by
# side with containerd 2.4 + runc 1.5 (built once by scripts/containerd2.sh
# into /var/cache/husk) and Debian's containerd 1.6 where a benchmark
# compares.
bench: build
	./scripts/deps.sh --bench
	$(TEST_ENV) HUSK_CONTAINERD2=$(TOOLS)/containerd2 $(GO) test -count=1 -run '^$$' -bench . -benchtime 1x -timeout 30m ./...

# A full node under kubelet (issue 19.3): kubelet v1.37.2 standalone with
# HUSK_BENCH_NODE_PODS static pods (110) against husk, husk with
# EventedPLEG, containerd 2.4 and Debian's 1.6 in turn; all-Ready time,
# kubelet's startup histogram, the runtime's CPU and memory over
# HUSK_BENCH_NODE_STEADY (5m), delete time; one table, JSON in
# bench-results/node-*.json.
bench-node: build
	./scripts/deps.sh --bench
	./scripts/kubelet.sh
	$(TEST_ENV) HUSK_CONTAINERD2=$(TOOLS)/containerd2 HUSK_BENCH_NODE=1 $(GO) test -count=1 -run '^$$' -bench '^BenchmarkNode$$' -benchtime 1x -timeout 3h ./conformance/kubelet/

clean:
	rm -rf $(BIN) $(RACE_BIN) $(TOOLS)
