# alloy-runner: build, test, demo. `make help` lists the targets.
CARGO ?= cargo
SHELL := /bin/bash

.PHONY: help build test lint fmt static demo sim coordinator-sim bench clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

demo: ## a real two-stage pipeline through both simulators, its log printed
	tests/demo/demo.sh

build: ## debug build of the runner and the simulators
	$(CARGO) build --workspace --all-targets

test: ## rustfmt check, clippy with warnings denied, every test
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) test --workspace

lint: ## rustfmt check and clippy only
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# musl when its target is installed and a musl C compiler is there to build ring's C and
# assembly; else glibc with the C runtime linked in statically.
MUSL_CC := $(shell command -v x86_64-linux-musl-gcc || command -v musl-gcc)
STATIC_TARGET := $(shell rustup target list --installed 2>/dev/null \
	| grep -qx x86_64-unknown-linux-musl && [ -n "$(MUSL_CC)" ] \
	&& echo x86_64-unknown-linux-musl || echo x86_64-unknown-linux-gnu)
STATIC_BIN := target/$(STATIC_TARGET)/release/alloy-runner

static: ## fully static release binary; fails unless file and ldd agree it is static
	@if [ "$(STATIC_TARGET)" = x86_64-unknown-linux-musl ]; then \
		echo "building for $(STATIC_TARGET) with $(MUSL_CC)"; \
		CC_x86_64_unknown_linux_musl=$(MUSL_CC) \
			$(CARGO) build --release --locked -p alloy-runner --bin alloy-runner --target $(STATIC_TARGET); \
	else \
		echo "no musl target or musl C compiler: building for $(STATIC_TARGET) with +crt-static"; \
		RUSTFLAGS='-C target-feature=+crt-static' \
			$(CARGO) build --release --locked -p alloy-runner --bin alloy-runner --target $(STATIC_TARGET); \
	fi
	@size=$$(stat -c %s $(STATIC_BIN)); \
		echo "$(STATIC_BIN): $$size bytes ($$(awk "BEGIN {printf \"%.2f\", $$size / 1048576}") MiB)"; \
		[ "$$size" -le $$((6 * 1024 * 1024)) ] \
		|| { echo "error: $(STATIC_BIN) is over the 6 MiB budget" >&2; exit 1; }
	@file -L $(STATIC_BIN)
	@file -L $(STATIC_BIN) | grep -Eq 'statically linked|static-pie linked' \
		|| { echo "error: $(STATIC_BIN) is not statically linked" >&2; exit 1; }
	@ldd_out="$$(ldd $(STATIC_BIN) 2>&1)"; echo "ldd: $$ldd_out"; \
		echo "$$ldd_out" | grep -Eq 'not a dynamic executable|statically linked' \
		|| { echo "error: ldd lists shared libraries for $(STATIC_BIN)" >&2; exit 1; }

fmt: ## format the code
	$(CARGO) fmt --all

coordinator-sim: ## serve the coordinator simulator in the foreground (ARGS="--dialect gitlab --pipeline F --repo D")
	$(CARGO) run -p coordinator-sim -- $(ARGS)
sim: ## serve the Kubernetes API simulator in the foreground (SIM_ADDR, SIM_KUBECONFIG, SIM_TLS, SIM_TOKEN)
	$(CARGO) run -p kube-sim --bin kube-sim

bench: ## release build; 1 GiB of exec output through our client and through kubectl, on the simulator
	$(CARGO) bench -p alloy-runner --bench exec_throughput

clean: ## remove build output
	$(CARGO) clean
