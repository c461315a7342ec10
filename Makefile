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
# sudo resets PATH: let `sudo make test` find the Go in /usr/local/go too.
export PATH := $(PATH):/usr/local/go/bin
DOCKER     ?= $(shell test -x /usr/bin/docker && echo /usr/bin/docker || echo docker)
E2E_FLAGS  ?= -count=1 -v -timeout 60m
GORELEASER_VERSION ?= v2.16.0
GORELEASER ?= $(or $(shell command -v goreleaser),$(shell $(GO) env GOPATH)/bin/goreleaser)

.PHONY: build unit lint test e2e images release-check bench clean demo
build: bin/sysbox
	@for r in $(ROLES); do ln -sfn sysbox bin/$$r; done

bin/sysbox: $(shell find . -name '*.go' -not -path './e2e/*') go.mod go.sum
	@mkdir -p bin
	CGO_ENABLED=1 $(GO) build -trimpath -buildmode=pie -tags "$(TAGS)" -ldflags "$(LDFLAGS)" -o $@ .

unit:
	CGO_ENABLED=1 $(GO) test -tags "$(TAGS)" -count=1 ./...

lint:
	$(GO) vet -tags "$(TAGS)" ./...
	$(GO) run mvdan.cc/gofumpt@v0.9.2 -l . | tee /dev/stderr | (! read)
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.7.0 -tags "$(TAGS)" ./...

clean:
	rm -rf bin dist

# test: the unit tests (no root needed), then, as root, the e2e tier. This is
# the README's test command and what .ci/run runs.
test:
	@if [ "$$(id -u)" -eq 0 ]; then scripts/install-deps.sh; fi
	@$(MAKE) --no-print-directory unit
	@if [ "$$(id -u)" -eq 0 ]; then $(MAKE) --no-print-directory e2e; \
	else echo "test: not root: e2e tests skipped (run: sudo make test)"; fi

# e2e: real containers under a real Docker engine (root). The harness in
# e2e/main_test.go starts dockerd if needed, registers bin/sysbox-runc,
# builds the images (scripts/build-images.sh) and starts the daemons.
e2e:
	@if [ "$$(id -u)" -ne 0 ]; then echo "e2e: needs root (sudo make e2e)" >&2; exit 1; fi
	@scripts/install-deps.sh
	@$(MAKE) --no-print-directory build
	CGO_ENABLED=1 $(GO) test -tags "e2e $(TAGS)" $(E2E_FLAGS) ./e2e/...

# images: the e2e test images, cached under /var/cache/sysbox-e2e. Needs a
# running Docker engine (make e2e starts one).
images:
	DOCKER=$(DOCKER) scripts/build-images.sh

# release-check: validate goreleaser.yaml and build an amd64 snapshot
# (archives, checksums, .deb, .rpm) into dist/. Not part of make test.
release-check:
	@test -x "$(GORELEASER)" || { echo "installing goreleaser $(GORELEASER_VERSION)"; \
		$(GO) install github.com/goreleaser/goreleaser/v2@$(GORELEASER_VERSION); }
	$(GORELEASER) check
	SYSBOX_RELEASE_ARCHS=amd64 SYSBOX_VERSION=$(VERSION) $(GORELEASER) release --snapshot --clean --skip=publish

# bench: side by side in one run against runc (and crun, lxcfs where they
# compare); prints medians and ratios. Root, a Docker engine with
# sysbox-runc registered and the sysbox daemons running (sysbox install).
bench: build
	bash bench/runtime.sh
	bash bench/mgr.sh
	bash bench/fs.sh
	bash bench/system.sh
	bash bench/trap.sh

# demo: the README's main command. On a fresh Debian/Ubuntu host (root):
# installs what is missing, builds, runs `sysbox install --docker`, builds
# the system image and shows systemd and Docker inside a system container.
demo:
	scripts/demo.sh
