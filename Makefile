# Receptor (Go) — build, test, run.
#   make run     a local node from the embedded default config (socket, gRPC, REST)
#   make test    unit + integration tests with the race detector, plus short fuzz runs
SHELL    := /bin/bash
GO       ?= go
BIN      := $(CURDIR)/bin
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo 0.0.0-dev)
LDFLAGS  := -X github.com/receptor-mesh/receptor/services/internal/buildinfo.Version=$(VERSION)
FUZZTIME ?= 3s
FUZZTIME_LONG ?= 10m
BENCHTIME ?= 1x

.PHONY: all build test unit integration test-faults test-k8s fuzz fuzz-long generate lint run bench clean

all: build

build:
	@mkdir -p $(BIN)
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/...

# The integration tests run the binaries built here (RECEPTOR_BIN_DIR).
test: build unit integration fuzz

unit:
	$(GO) test -race -count=1 -timeout 10m $$($(GO) list ./... | grep -v /integration)

integration: build
	RECEPTOR_BIN_DIR=$(BIN) $(GO) test -race -count=1 -timeout 10m ./integration/...

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

generate:
	./scripts/generate.sh

# go mod tidy -diff, gofmt, go vet, buf lint, gen/ up to date: the same list
# CI runs (.ci/run), kept once in scripts/lint.sh.
lint:
	./scripts/lint.sh

run: build
	@echo 'REST needs the admin token the node creates on start, e.g.:'
	@echo '  curl -H "Authorization: Bearer $$(cat /tmp/receptor-local/http-gateway.token)" 127.0.0.1:8080/v1/status'
	$(BIN)/receptor --embedded-config

bench: build
	$(GO) test -run '^$$' -bench . -benchtime $(BENCHTIME) ./services/...
	RECEPTOR_BIN_DIR=$(BIN) ./scripts/bench/run.sh

clean:
	rm -rf $(BIN)
