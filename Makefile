# Receptor (Go) — build, test, run.
#   make run     a local node from the embedded default config (socket, gRPC, REST)
#   make test    unit + integration tests with the race detector, plus short fuzz runs
#   make install PREFIX=/usr/local DESTDIR=   the binaries into $(DESTDIR)$(PREFIX)/bin
#   make image   the container image (deploy/container) from bin/, with podman or buildah
SHELL    := /bin/bash
GO       ?= go
BIN      := $(CURDIR)/bin
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo 0.0.0-dev)
LDFLAGS  := -X github.com/receptor-mesh/receptor/services/internal/buildinfo.Version=$(VERSION)
FUZZTIME ?= 3s
FUZZTIME_LONG ?= 10m
BENCHTIME ?= 1x
PREFIX   ?= /usr/local
DESTDIR  ?=
IMAGE    ?= localhost/receptor:latest
BINARIES := receptor receptor-router receptor-worker receptor-runner receptor-probe receptorctl
# Where `make integration` has integration/interop write how many of its
# tests were skipped and why (printed after the run).
INTEROP_SUMMARY := $(BIN)/.interop-summary

.PHONY: all build install image test unit integration test-faults test-k8s fuzz fuzz-long generate lint run bench bench-scale bench-webui clean

all: build

# Static binaries (CGO_ENABLED=0: no C library needed): they run on any
# Linux and in the FROM-scratch image (make image).
build:
	@mkdir -p $(BIN)
	CGO_ENABLED=0 $(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/...

# receptor-runner must stay beside receptor and receptor-worker: the work
# agent starts it to run command units.
install: build
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 0755 $(addprefix $(BIN)/,$(BINARIES)) $(DESTDIR)$(PREFIX)/bin/

# The image of deploy/container/Containerfile, assembled FROM scratch from
# the binaries in bin/ (scripts/image.sh; podman or buildah).
image: build
	BIN=$(BIN) IMAGE=$(IMAGE) VERSION=$(VERSION) ./scripts/image.sh

# The integration tests run the binaries built here (RECEPTOR_BIN_DIR).
test: build unit integration fuzz

unit:
	$(GO) test -race -count=1 -timeout 10m $$($(GO) list ./... | grep -v /integration)

integration: build
	@rm -f $(INTEROP_SUMMARY)
	RECEPTOR_BIN_DIR=$(BIN) RECEPTOR_INTEROP_SUMMARY=$(INTEROP_SUMMARY) \
	  $(GO) test -race -count=1 -timeout 10m ./integration/...; \
	  rc=$$?; cat $(INTEROP_SUMMARY) 2>/dev/null; exit $$rc

# The whole fault campaign (docs/reliability.md): the kill/restart matrix
# and 1,000 units / 1,000 streams; about 3 minutes on 2 cores. `make test`
# runs its short version as part of integration/...
test-faults: build
	FAULTS=full RECEPTOR_BIN_DIR=$(BIN) $(GO) test -race -count=1 -timeout 30m -v ./integration/faults/

# The kubernetes work type against a real kube-apiserver + etcd with pods run
# by tools/kubenode (docs/kubernetes.md). scripts/kube-test-bins.sh builds
# kube-apiserver once into ~/.cache/receptor-test/kube (tools/kube, about 10
# minutes cold on 2 idle cores; seconds when cached) and needs etcd
# (apt-get install etcd-server).
test-k8s: build
	env $$(./scripts/kube-test-bins.sh) RECEPTOR_BIN_DIR=$(BIN) $(GO) test -race -count=1 -timeout 20m -v -run 'TestKubernetesWork' ./integration/

fuzz:
	FUZZTIME=$(FUZZTIME) ./scripts/fuzz.sh

# Every target for FUZZTIME_LONG each; new interesting inputs are copied into
# the packages' testdata/fuzz (commit them). Subsets: FUZZ_PKGS="./services/mesh/..."
# FUZZ_TARGETS='FuzzReadFrame|FuzzGateway'. Exits non-zero on a finding.
fuzz-long:
	FUZZTIME_LONG=$(FUZZTIME_LONG) ./scripts/fuzz.sh long

# gen/ from proto/ (buf) and the web view's bundle gen/webui from web/
# (npm ci + esbuild; needs node and npm, the Go build does not).
generate:
	./scripts/generate.sh

# go mod tidy -diff, gofmt, go vet, buf lint, gen/ up to date: the same list
# CI runs (.ci/run), kept once in scripts/lint.sh.
lint:
	./scripts/lint.sh

run: build
	@echo 'Web view: http://127.0.0.1:8080/ui/ (sign in with the admin token: cat /tmp/receptor-local/http-gateway.token)'
	@echo 'REST needs the admin token the node creates on start, e.g.:'
	@echo '  curl -H "Authorization: Bearer $$(cat /tmp/receptor-local/http-gateway.token)" 127.0.0.1:8080/v1/status'
	$(BIN)/receptor --embedded-config

bench: build
	$(GO) test -run '^$$' -bench . -benchtime $(BENCHTIME) ./services/...
	RECEPTOR_BIN_DIR=$(BIN) ./scripts/bench/run.sh

# The web view on a 100-node in-process mesh in headless Chromium (needs
# chromium): time to draw, frame gaps and timer lateness while 20 links
# flap (docs/webui.md). No race detector: it measures.
# Simulated large meshes in one process (docs/scale.md): convergence,
# routing traffic and memory per node at several sizes; every node's route
# count and a sample of full tables are checked against shortest paths.
# SCALE_ARGS go to `bench scale` (-h lists them).
SCALE_ARGS ?= -n 100,250,500,1000 -topo random,awx -dilate 3
bench-scale:
	$(GO) run ./scripts/bench scale $(SCALE_ARGS)

bench-webui: build
	RECEPTOR_BIN_DIR=$(BIN) $(GO) test -count=1 -run '^$$' -bench BenchmarkWebUI100Nodes -benchtime 1x -timeout 10m ./integration/

clean:
	rm -rf $(BIN)
