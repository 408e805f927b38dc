# vipd — build, test, benchmark and demo. Everything here runs on a fresh
# Debian 12 machine as root after `.ci/deps` (the test and demo targets
# call it for you).

GO       ?= go
BIN      := bin/vipd
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X github.com/vipd/vipd/internal/daemon.Version=$(VERSION)
PKGS     := ./...

.PHONY: all build package image test unit integration bench bench-failover bench-proxy bench-storm bench-restart bench-ecmp bench-migration demo fuzz soak vet fmt clean deps

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/vipd

# dist/vipd_<version>_{amd64,arm64}.deb (nfpm as a library, see
# internal/release/deb) and dist/vipd-<version>-oci.tar (an OCI image
# layout with an amd64+arm64 index, see internal/release/ociimage). Both
# need only Go; nothing is pushed anywhere.
package:
	$(GO) run ./tools/package -version '$(VERSION)' -ldflags '$(LDFLAGS)' -out dist

image:
	$(GO) run ./tools/image -version '$(VERSION)' -ldflags '$(LDFLAGS)' -out dist

deps:
	@sh .ci/deps

# The test command of README.md and .ci/run: unit tests, then the
# integration suite (root: network namespaces, keepalived interop).
test: deps
	$(GO) vet $(PKGS)
	GOOS=linux GOARCH=arm64 $(GO) build ./...
	$(GO) test -count=1 -timeout 10m $$($(GO) list ./... | grep -v /integration)
	$(GO) test -count=1 -timeout 30m ./integration/...

unit:
	$(GO) test -count=1 -short $(PKGS)

integration: deps
	$(GO) test -count=1 -v -timeout 20m ./integration/

bench: bench-failover bench-proxy bench-storm bench-restart

bench-failover: deps build
	$(GO) run ./integration/benchfailover -reps 10 -out docs/benchmarks.md -plots docs

bench-proxy: deps build
	$(GO) run ./integration/benchproxy -reps 5

# A reconnect storm through the VIP of an HA pair (root): vipd against
# keepalived + HAProxy; writes the "## Reconnect storm" section.
bench-storm: deps build
	$(GO) run ./integration/benchstorm -n 4000 -reps 5 -out docs/benchmarks.md

# Restarts under load (root): vipd restart on the master and on the
# backup, against vipd SIGTERM + start, HAProxy's seamless reload and
# keepalived's restart; writes the "## Hitless restart" section.
bench-restart: deps build
	$(GO) run ./integration/benchrestart -n 1000 -restarts 10 -out docs/benchmarks.md

# ECMP rehash through an FRR router when an LB leaves or joins (docs/bgp.md).
bench-ecmp: deps
	VIPD_BENCH_ECMP=1 $(GO) test -count=1 -v -timeout 10m -run '^TestECMPRehash$$' ./integration/

# BGP mode through FRR beside VRRP mode, in one run: planned withdrawal,
# vipd crash, host death (hold timer, BFD); writes the "## BGP mode"
# section of docs/benchmarks.md. VIPD_BENCH_REPS (default 5).
.PHONY: bench-bgp
bench-bgp: deps
	VIPD_BENCH_BGP=1 VIPD_BENCH_OUT=$(CURDIR)/docs/benchmarks.md $(GO) test -count=1 -v -timeout 30m -run '^TestBGPBench$$' ./integration/

# The rolling migration from keepalived + HAProxy, both topologies, both
# VRRP modes, with crash rehearsals at VRRPv2 and VRRPv3 (docs/migration.md).
bench-migration: deps
	VIPD_BENCH_MIGRATION=1 $(GO) test -count=1 -v -timeout 15m -run '^TestMigrationRolling$$' ./integration/

demo: deps build
	@sh examples/demo/demo.sh

fuzz:
	$(GO) test ./vrrp -run '^$$' -fuzz FuzzUnmarshal -fuzztime 60s
	$(GO) test ./internal/config -run '^$$' -fuzz FuzzParse -fuzztime 60s
	$(GO) test ./internal/control -run '^$$' -fuzz FuzzDecodeRequest -fuzztime 60s
	$(GO) test ./internal/importer -run '^$$' -fuzz FuzzKeepalived -fuzztime 60s
	$(GO) test ./internal/importer -run '^$$' -fuzz FuzzHAProxy -fuzztime 60s

# A long run with a drill every few seconds and steady proxied traffic
# (VIPD_SOAK_MINUTES, default 10): fds, threads and RSS must stay flat.
soak: deps
	VIPD_SOAK=1 VIPD_SOAK_MINUTES=$${VIPD_SOAK_MINUTES:-10} $(GO) test -count=1 -v -timeout 0 -run '^TestSoak$$' ./integration/

vet:
	$(GO) vet $(PKGS)
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); exit 1)

clean:
	rm -rf bin dist
