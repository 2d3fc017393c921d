# alloy-runner: build, test, demo. `make help` lists the targets.
CARGO ?= cargo
SHELL := /bin/bash

.PHONY: help build test lint fmt static demo sim coordinator-sim bench clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

build: ## debug build of the runner and the simulators
	$(CARGO) build --workspace --all-targets

test: ## rustfmt check, clippy with warnings denied, every test
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) test --workspace

lint: ## rustfmt check and clippy only
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt: ## format the code
	$(CARGO) fmt --all

sim: ## serve the Kubernetes API simulator in the foreground (SIM_ADDR, SIM_KUBECONFIG, SIM_TLS, SIM_TOKEN)
	$(CARGO) run -p kube-sim --bin kube-sim

clean: ## remove build output
	$(CARGO) clean
