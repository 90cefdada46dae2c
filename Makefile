# warren: `make demo` runs the whole toolkit on loopback; `make test` runs the tests.
SHELL := /bin/bash
GO ?= go
BIN ?= bin
BINARIES := relay-server tunnel-host tunnel-client tunnel-server wing probe

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
DATE ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
PKG := github.com/warrenhq/warren/internal/buildinfo
LDFLAGS := -s -w -X $(PKG).Version=$(VERSION) -X $(PKG).Commit=$(COMMIT) -X $(PKG).Date=$(DATE)

# Tools are pinned and installed into .tools/ on first use.
TOOLS := $(CURDIR)/.tools
STATICCHECK_VERSION := v0.8.2
GORELEASER_VERSION := v2.16.0
STATICCHECK := $(TOOLS)/staticcheck
GORELEASER := $(TOOLS)/goreleaser

.PHONY: all build test lint bench demo demo-cluster cover snapshot release-check clean help

all: build

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

build: ## build the six binaries into bin/
	@mkdir -p $(BIN)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/ $(addprefix ./cmd/,$(BINARIES))

test: ## run every test with the race detector
	$(GO) test -race -count=1 -timeout 20m ./...

lint: $(STATICCHECK) ## go vet, gofmt and staticcheck
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	@# internal/sshfork is upstream x/crypto code, kept as close to it as possible (its README).
	$(STATICCHECK) $$($(GO) list ./... | grep -v /internal/sshfork/)

test-long: ## soak tests longer than one TURN allocation refresh cycle (~10 min; not in CI)
	go test -race -count=1 -tags long -run Soak -timeout 30m -v ./internal/turn/turnclient/

bench: build ## benchmarks, each reported against the direct path in the same run
	./scripts/bench.sh

demo: build ## run the demo of the whole toolkit on loopback
	./scripts/demo.sh

demo-cluster: build ## three relay nodes on PostgreSQL behind HAProxy, on loopback (needs postgresql, haproxy)
	./scripts/cluster-demo.sh

# cover: the unit tests' profile plus the e2e runs' counters (binaries built
# with -cover write to GOCOVERDIR, see internal/e2e), merged into one profile
# so the CLI packages are covered too. `go tool cover` merges blocks that
# appear in both. COVER_RUN narrows both runs to matching tests.
COVER := $(CURDIR)/cover
COVER_RUN ?= .
cover: ## test coverage of unit and e2e tests in coverage.out and coverage.html
	rm -rf $(COVER) && mkdir -p $(COVER)/e2e
	$(GO) test -count=1 -timeout 20m -run '$(COVER_RUN)' -covermode=set -coverprofile=$(COVER)/unit.out $$($(GO) list ./... | grep -v /internal/e2e$$)
	WARREN_E2E_COVERDIR=$(COVER)/e2e $(GO) test -count=1 -timeout 20m -run '$(COVER_RUN)' ./internal/e2e/
	$(GO) tool covdata textfmt -i=$(COVER)/e2e -o $(COVER)/e2e.out
	{ echo 'mode: set'; tail -q -n +2 $(COVER)/unit.out $(COVER)/e2e.out; } > coverage.out
	$(GO) tool cover -func=coverage.out | tail -1
	$(GO) tool cover -html=coverage.out -o coverage.html

snapshot: $(GORELEASER) ## local release build of every platform into dist/
	$(GORELEASER) release --snapshot --clean

release-check: $(GORELEASER) ## validate .goreleaser.yaml
	$(GORELEASER) check

clean: ## remove build output
	rm -rf $(BIN) dist coverage.out coverage.html $(COVER)

$(STATICCHECK):
	GOBIN=$(TOOLS) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

$(GORELEASER):
	GOBIN=$(TOOLS) $(GO) install github.com/goreleaser/goreleaser/v2@$(GORELEASER_VERSION)
