# Tensorfleet: every target installs what it needs (npm ci when node_modules is missing or stale).
SHELL := /bin/bash
.DEFAULT_GOAL := help
export CDK8S_CHECK_UPGRADE := false
NODE_MODULES := node_modules/.package-lock.json
SHARED ?= $(or $(TENSORFLEET_SHARED_DIR),../shared)
# Local datasets for the demo (../shared/data when present; otherwise the chart's mirror is downloaded).
DATA_DIR ?= $(if $(wildcard $(SHARED)/data/mnist),$(SHARED)/data,)

.PHONY: help install build lint imports synth check-dist test test-unit test-integration chromium validate demo bench bench-deps fuzz image clean
TRAINER_IMAGE ?= ghcr.io/tensorfleet/trainer:0.1.0
MLFLOW_IMAGE ?= ghcr.io/tensorfleet/mlflow:2.10.2

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

$(NODE_MODULES): package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

install: $(NODE_MODULES) ## npm ci, when node_modules is missing or older than the lockfile

build: install ## type-check (strict) and compile everything into build/
	npx tsc -p tsconfig.json

lint: install ## ESLint (typescript-eslint, the layering's import boundaries, lines of at most 140) and prettier --check
	npx eslint --max-warnings 0 .
	npx prettier --check .

imports: install ## regenerate imports/ from the CRDs in ../shared/crds (cdk8s import)
	rm -rf imports && npx cdk8s import --language typescript --output imports

synth: install ## synthesize every chart into dist/ (deterministic)
	rm -rf dist && npx cdk8s synth

check-dist: synth ## fail if dist/ differs from what is committed
	@if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then \
	  if ! git diff --exit-code --stat -- dist || [ -n "$$(git status --porcelain -- dist)" ]; then \
	    git status --short -- dist; echo "dist/ is stale: commit what 'make synth' writes"; exit 1; \
	  fi; echo "dist/ matches what make synth writes"; \
	else echo "not a git checkout: check-dist skipped"; fi

test: lint check-dist chromium ## the whole suite: lint, strict build, dist check, unit + integration tests, manifest validation
	rm -rf build && $(MAKE) --no-print-directory build
	bash tools/run-tests.sh

test-unit: build ## unit tests only
	bash tools/run-tests.sh unit

test-integration: build chromium ## multi-process tests only
	bash tools/run-tests.sh integration

# The report's browser test opens pages in Debian's chromium; apt-get installs it when missing (as root),
# otherwise that test is skipped and says why.
chromium: ## install Debian's chromium for the report's browser test (apt-get, when missing and root)
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) || \
	    echo "chromium: apt-get install failed; the report's browser test will be skipped"; \
	else echo "chromium: not installed and not root; the report's browser test will be skipped"; fi

validate: synth build ## validate every object in dist/ against the Kubernetes 1.27 schema, the CRDs and the security baseline
	node build/tools/validate-dist.js dist

demo: synth build ## synthesize, then train the ddp-mnist chart locally (2 ranks, real MNIST) and print its test accuracy
	node bin/tensorfleet run ddp-mnist $(if $(DATA_DIR),--data-dir $(DATA_DIR),)

# What the benchmarks compare against, from Debian for /usr/bin/python3: gloo (PyTorch's CPU backend,
# python3-torch) for the all-reduce bench; FastAPI + requests with JSON lists (python3-fastapi,
# python3-uvicorn, python3-requests) for the smashed bench. apt-get installs whichever is missing.
GLOO_PYTHON ?= /usr/bin/python3
FASTAPI_PYTHON ?= /usr/bin/python3
bench-deps: ## install what the benchmarks compare against (python3-torch, python3-fastapi, python3-uvicorn, python3-requests via apt-get, when missing)
	@missing=""; \
	if $(GLOO_PYTHON) -c 'import torch.distributed as d; assert d.is_gloo_available()' 2>/dev/null; then echo "gloo: $$($(GLOO_PYTHON) -c 'import torch; print(torch.__version__)')"; \
	else missing="python3-torch"; fi; \
	if $(FASTAPI_PYTHON) -c 'import fastapi, uvicorn, requests' 2>/dev/null; then echo "fastapi: $$($(FASTAPI_PYTHON) -c 'import fastapi; print(fastapi.__version__)')"; \
	else missing="$$missing python3-fastapi python3-uvicorn python3-requests"; fi; \
	if [ -z "$$missing" ]; then :; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	else echo "baselines skipped: install Debian's$$(printf ' %s' $$missing) to compare against them"; fi

bench: build bench-deps ## benchmarks: ratios against a baseline measured in the same run
	TENSORFLEET_GLOO_PYTHON=$(GLOO_PYTHON) node bin/tensorfleet bench allreduce --world-size 2
	TENSORFLEET_GLOO_PYTHON=$(GLOO_PYTHON) node bin/tensorfleet bench allreduce --world-size 4
	node bin/tensorfleet bench ddp
	node bin/tensorfleet bench fedavg --partition iid
	TENSORFLEET_FASTAPI_PYTHON=$(FASTAPI_PYTHON) node bin/tensorfleet bench smashed
	node bin/tensorfleet bench data

# Hostile inputs against every real server process on loopback (trainer/src/fuzz/main.ts). FUZZ_SEED replays a
# run, FUZZ_CASES sets the inputs, FUZZ_SHORT=1 is the short form that `make test` runs (fuzz.integration.test.ts).
fuzz: build ## hostile inputs against every server process (ring, federated, split, API, health): crashes, hangs, RSS, honest peers
	node build/trainer/src/fuzz/main.js $(if $(filter 1,$(FUZZ_SHORT)),--short,)

image: ## build the trainer and MLflow images (needs a Docker engine)
	docker build -f trainer/Dockerfile -t $(TRAINER_IMAGE) .
	docker build -t $(MLFLOW_IMAGE) images/mlflow

clean: ## remove build output (not dist/)
	rm -rf build
