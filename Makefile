# strata — build, install and test.
GO      ?= go
PREFIX  ?= /usr/local
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
# A pipeline's status is its first failure (go test | testlog).
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
# go test's own lines, plus every skipped test with its reason (no test
# skips silently in CI's log).
TESTLOG := bin/testlog

# Packages whose tests also run under the race detector.
CORE := ./content/... ./metadata/... ./filters/... ./images/... ./namespaces/... ./leases/... ./internal/... ./archive/... ./diff/... ./snapshots/... ./mount/... ./reference/... ./remotes/... ./pull/... ./push/... ./progress/... ./server/... ./client/... ./jobs/... ./cri/... ./services/... ./runtime/... ./unpack/... ./events/... ./access/... ./containers/... ./protoconv/... ./labels/... ./wiring/... ./oci/... ./network/...

.PHONY: all build install deps test lint race unit bench fuzz clean demo

all: build

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/strata ./cmd/strata
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/stratad ./cmd/stratad

install: build
	install -D -m 0755 bin/strata $(DESTDIR)$(PREFIX)/bin/strata
	install -D -m 0755 bin/stratad $(DESTDIR)$(PREFIX)/bin/stratad
	sed 's|/usr/local/bin/stratad|$(PREFIX)/bin/stratad|' packaging/stratad.service > bin/stratad.service
	install -D -m 0644 bin/stratad.service $(DESTDIR)$(PREFIX)/lib/systemd/system/stratad.service

# What the tests need (docker-registry, ctr, skopeo, igzip…), installed when
# missing, and the client tools built from source once into
# /var/cache/strata-test (crictl and critest v1.37.0, ctr 2.4.2, buildkitd
# and buildctl v0.35.0); a no-op
# when all is there.
deps:
	scripts/deps.sh
	scripts/testtools.sh

# The whole suite, as CI runs it; installs what it lacks first. Then it
# checks that the tests left no mount, interface, netns, iptables rule,
# runtime process or temp dir on the host (scripts/leakcheck.sh).
LEAKSNAP = /var/cache/strata-test/leakcheck.before

test: deps
	scripts/leakcheck.sh snapshot $(LEAKSNAP)
	$(MAKE) lint race unit
	scripts/leakcheck.sh check $(LEAKSNAP)

lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet ./...
	cd test/containerd && $(GO) vet ./...

$(TESTLOG): internal/tools/testlog/main.go
	$(GO) build -o $@ ./internal/tools/testlog

# Race detector on the core packages; the crash test runs 30 kills here.
race: $(TESTLOG)
	$(GO) test -json -race -short -count=1 $(CORE) | $(TESTLOG)

# Everything, the crash test with its full 200 kills; then the CLI's tests
# again in client mode, every command through a daemon; then containerd's
# own content and snapshot suites against stratad (test/containerd, a
# module of its own: containerd's implementation stays out of go.mod).
unit: $(TESTLOG)
	$(GO) test -json -count=1 -timeout 20m ./... | $(TESTLOG)
	STRATA_TEST_MODE=daemon $(GO) test -json -count=1 -timeout 10m ./cmd/strata/ | $(TESTLOG)
	cd test/containerd && $(GO) test -json -count=1 -timeout 20m ./... | ../../$(TESTLOG)

# Benchmarks of the store (put STRATA_BENCH_DIR on the filesystem to measure).
bench:
	$(GO) test -run '^$$' -bench . -benchtime 10x ./metadata/

fuzz:
	$(GO) test ./filters/ -run '^$$' -fuzz FuzzParse -fuzztime 60s -fuzzminimizetime 5s
	$(GO) test ./images/ -run '^$$' -fuzz FuzzChildren -fuzztime 60s -fuzzminimizetime 5s
	$(GO) test ./archive/ -run '^$$' -fuzz FuzzApply -fuzztime 120s -fuzzminimizetime 5s
	$(GO) test ./reference/ -run '^$$' -fuzz FuzzParse -fuzztime 60s -fuzzminimizetime 5s
	$(GO) test ./remotes/docker/auth/ -run '^$$' -fuzz FuzzParseChallenges -fuzztime 60s -fuzzminimizetime 5s
	$(GO) test ./remotes/docker/config/ -run '^$$' -fuzz FuzzParse -fuzztime 60s -fuzzminimizetime 5s
	$(GO) test ./remotes/docker/credentials/ -run '^$$' -fuzz FuzzParseConfig -fuzztime 60s -fuzzminimizetime 5s
	$(GO) test ./images/ -run '^$$' -fuzz FuzzReadManifest -fuzztime 60s -fuzzminimizetime 5s
	$(GO) test ./images/ -run '^$$' -fuzz FuzzParsePlatform -fuzztime 60s -fuzzminimizetime 5s
	$(GO) test ./archive/ocilayout/ -run '^$$' -fuzz FuzzImport -fuzztime 120s -fuzzminimizetime 5s

# Pull from a throwaway local registry, list, mount, du: no internet needed.
demo: build
	scripts/demo.sh bin/strata

clean:
	rm -rf bin
