# One idempotent set-up (.venv), reused by every other target.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
IMGPIPE := $(VENV)/bin/imgpipe
STAMP := $(VENV)/.installed
# Programs the tests run, from Debian packages: chromium renders the run report
# (report_chromium_test.py); strace watches every file the ExampleGen writes
# (reliability/ingest_paths_test.py); setpriv (util-linux) drops root's file-mode override
# (reliability/unreadable_test.py). A test whose tool is missing fails (tests/conftest.py's
# REQUIRED_TOOLS), never skips.
TEST_TOOLS := /usr/bin/chromium /usr/bin/strace /usr/bin/setpriv
TEST_PACKAGES := chromium strace util-linux

# The demo: a base pretrained on six source shapes, transferred to two shapes it never saw.
DEMO := build/demo
DEMO_SOURCE_SHAPES := square,triangle,ring,stripes,star,diamond
DEMO_SIZE := 150

.PHONY: setup demo test test-opt-in test-tools lint format docs bench image clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@python3.10 --version >/dev/null 2>&1 || { \
	  echo "make setup: Python 3.10 not found; install it (pyenv install 3.10.13) and retry" >&2; \
	  exit 2; }
	@test -x $(PY) || python3.10 -m venv $(VENV)
	@# uv installs the same versions pip resolves (checked with both freezes), in a third of the time.
	@# --compile-bytecode writes the .pyc files pip writes by default: without them every process
	@# compiles TensorFlow's and TFX's sources again where PYTHONDONTWRITEBYTECODE is set, as here.
	$(PY) -m pip install --quiet uv==0.13.9
	$(VENV)/bin/uv pip install --python $(PY) --quiet --compile-bytecode -e ".[dev]"
	@touch $(STAMP)

$(DEMO)/base_weights.h5: | $(STAMP)
	$(IMGPIPE) sample-data $(DEMO)/source --shapes $(DEMO_SOURCE_SHAPES) --per-class 150 \
	  --size $(DEMO_SIZE) --seed 1
	$(IMGPIPE) pretrain-base --data $(DEMO)/source --output $@ --image-size $(DEMO_SIZE)

demo: setup $(DEMO)/base_weights.h5
	$(IMGPIPE) sample-data $(DEMO)/images --classes 2 --per-class 150 --size $(DEMO_SIZE) --seed 0
	$(IMGPIPE) run --data $(DEMO)/images --output $(DEMO)/output \
	  --weights $(DEMO)/base_weights.h5 --image-size $(DEMO_SIZE) --epochs 8

lint: setup
	$(VENV)/bin/ruff check .

format: setup
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# docs/flags.md is every command's --help; tests/docs_test.py fails when it is out of date.
docs: setup
	$(PY) -m pipeline.cli.reference > docs/flags.md

test: setup lint test-tools
	$(PY) -m pytest -q -n 2 --dist loadfile

# Tests too long for CI's budget (the opt_in marker): the transfer comparison, a base pretrained
# in [0, 1] against the seeds' recipe (tests/e2e/transfer_test.py, about 4-5 minutes).
test-opt-in: setup
	$(PY) -m pytest -q -m opt_in

test-tools: $(TEST_TOOLS)

# Installed once, when missing (as root, or through sudo).
$(TEST_TOOLS):
	@SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(TEST_PACKAGES) >/dev/null

# Benchmarks write JSON and Markdown, with the date and the machine, to benchmarks/results/.
bench: setup
	$(PY) -m benchmarks.ingest --output benchmarks/results
	$(PY) -m benchmarks.serving --output benchmarks/results
	$(PY) -m benchmarks.train --output benchmarks/results --train-images 400 --eval-images 200 \
	  --epochs 5 --end-to-end
	$(PY) -m benchmarks.transfer --output benchmarks/results

# The pipeline's container image for Kubeflow/Vertex and Dataflow workers (needs a Docker
# engine, which these machines do not have). WEIGHTS: an .h5 inside the repository to bake in.
IMAGE ?= imgpipe:dev
WEIGHTS ?=
image:
	DOCKER_BUILDKIT=1 docker build -t $(IMAGE) $(if $(WEIGHTS),--build-arg WEIGHTS=$(WEIGHTS)) .

clean:
	rm -rf build .pytest_cache
