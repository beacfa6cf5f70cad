# Self-bootstrapping targets: each one creates .venv (and the generated gRPC code) when missing.
SHELL := /bin/bash
PY := .venv/bin/python
PIP := .venv/bin/pip
PROTO_SRC := $(wildcard protos/avatarforge/v1/*.proto)
PROTO_OUT := grpc_server/_proto
STAMP := .venv/.installed
APT_STAMP := .venv/.apt-installed
NPM_STAMP := .venv/.npm-installed
APT_PACKAGES := libgrpc++-dev libprotobuf-dev libssl-dev protobuf-compiler-grpc protobuf-compiler cmake g++ make pkg-config \
                mono-mcs blender python3-numpy

.PHONY: venv proto models serve demo test bench tools clean

venv: $(STAMP) $(PROTO_OUT)/.stamp models

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv .venv
	$(PIP) install -q --upgrade pip
	# The CPU wheel; users with CUDA install their own torch build before `make`.
	$(PY) -c "import torch" 2>/dev/null || $(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[test]'
	touch $@

$(PROTO_OUT)/.stamp: $(PROTO_SRC) $(STAMP)
	rm -rf $(PROTO_OUT) && mkdir -p $(PROTO_OUT)
	$(PY) -m grpc_tools.protoc -Iprotos --python_out=$(PROTO_OUT) --pyi_out=$(PROTO_OUT) \
	    --grpc_python_out=$(PROTO_OUT) $(PROTO_SRC)
	# protoc writes imports rooted at protos/; the code lives in a package, so qualify them
	# (the descriptors keep their API paths, e.g. avatarforge/v1/avatarforge.proto, for reflection).
	sed -i 's/^from avatarforge\.v1 import/from grpc_server._proto.avatarforge.v1 import/' $(PROTO_OUT)/avatarforge/v1/*_grpc.py
	touch $(PROTO_OUT)/__init__.py $(PROTO_OUT)/avatarforge/__init__.py $(PROTO_OUT)/avatarforge/v1/__init__.py
	touch $@

proto: $(PROTO_OUT)/.stamp

# MediaPipe's face models (Apache-2.0), extracted from the mediapipe wheel into the model cache
# ($$AVATARFORGE_MODEL_DIR or ~/.cache/avatarforge/models/mediapipe-0.10.21) with pinned sha256; a no-op when
# present. Importing pymatting compiles its numba kernels into their on-disk cache once (about a minute),
# so the first portrait does not pay for it.
models: $(STAMP)
	$(PY) -m avatar.portrait.fetch_models fetch
	$(PY) -c "import pymatting"

# Debian and npm tools the test suite drives for real (C++ client, Mono, Blender, glTF validator).
$(APT_STAMP):
	@if [ "$$(id -u)" = 0 ]; then \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $(APT_PACKAGES); \
	else \
	  sudo apt-get update -q && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $(APT_PACKAGES); \
	fi
	touch $@

$(NPM_STAMP):
	mkdir -p .venv/node && npm install --silent --prefix .venv/node gltf-validator@2.0.0-dev.3.10
	touch $@

tools: venv $(APT_STAMP) $(NPM_STAMP)

serve: venv
	$(PY) -m grpc_server.cli serve

demo: venv
	$(PY) -m grpc_server.cli demo -o demo_out

test: tools
	$(PY) -m pytest -q -rs

bench: venv
	$(PY) -m benchmarks.render
	$(PY) -m benchmarks.create
	$(PY) -m benchmarks.stream
	$(PY) -m benchmarks.export

# Issue 9's fidelity protocol on ../shared/reference (portraits, clips); one JSON line, a few minutes.
fidelity: venv
	$(PY) -m benchmarks.fidelity

clean:
	rm -rf .venv $(PROTO_OUT) build *.egg-info
