# sysbox: one static binary, several roles. See README.md.
SHELL      := /bin/bash
GO         ?= go
VERSION    ?= $(shell cat VERSION 2>/dev/null || echo dev)
COMMIT     ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
PKG        := github.com/sysbox-dev/sysbox
TAGS       := seccomp netgo osusergo
LDFLAGS    := -X $(PKG)/internal/version.Version=$(VERSION) -X $(PKG)/internal/version.Commit=$(COMMIT) \
              -linkmode external -extldflags -static-pie
ROLES      := sysbox-runc sysbox-fs sysbox-mgr

.PHONY: build unit lint test e2e bench clean
build: bin/sysbox

bin/sysbox: $(shell find . -name '*.go' -not -path './e2e/*') go.mod go.sum
	@mkdir -p bin
	CGO_ENABLED=1 $(GO) build -trimpath -buildmode=pie -tags "$(TAGS)" -ldflags "$(LDFLAGS)" -o $@ .
	@for r in $(ROLES); do ln -sf sysbox bin/$$r; done

unit:
	CGO_ENABLED=1 $(GO) test -tags "$(TAGS)" -count=1 ./...

lint:
	$(GO) vet -tags "$(TAGS)" ./...
	$(GO) run mvdan.cc/gofumpt@v0.9.2 -l . | tee /dev/stderr | (! read)
	$(GO) run honnef.co/go/tools/cmd/staticcheck@2025.1.1 -tags "$(TAGS)" ./...

clean:
	rm -rf bin dist
