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
                mono-mcs blender python3-numpy chromium glslang-tools spirv-cross

.PHONY: venv proto models march serve demo test lint bench tools clean fuzz soak view

venv: $(STAMP) $(PROTO_OUT)/.stamp models march

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv .venv
	$(PIP) install -q --upgrade pip
	# The CPU wheel; users with CUDA install their own torch build before `make`.
	$(PY) -c "import torch" 2>/dev/null || $(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[test,ray]'
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

# The renderer's fused march kernel (avatar/march), compiled with the system C++ compiler and ninja
# from PyPI; rebuilt when the source or torch changes. A failed build is not an error: the renderer
# then runs its pure-torch march and logs why.
MARCH_LIB := avatar/march/_build/stamp.txt
march: $(MARCH_LIB)

$(MARCH_LIB): avatar/march/march.cpp avatar/march/__init__.py $(STAMP)
	$(PY) -m avatar.march.build

# MediaPipe's face models (Apache-2.0), extracted from the mediapipe wheel into the model cache
# ($$AVATARFORGE_MODEL_DIR or ~/.cache/avatarforge/models/mediapipe-0.10.21) with pinned sha256; a no-op when
# present. Importing pymatting compiles its numba kernels into their on-disk cache once (about a minute),
# so the first portrait does not pay for it.
models: $(STAMP)
	$(PY) -m avatar.portrait.fetch_models fetch
	$(PY) -c "import pymatting"

# Debian and npm tools the test suite drives for real (C++ client, Mono, Blender, glTF validator, headless
# Chromium with puppeteer-core pointed at Debian's binary: no browser download; three.js for the view page).
$(APT_STAMP):
	@if [ "$$(id -u)" = 0 ]; then \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $(APT_PACKAGES); \
	else \
	  sudo apt-get update -q && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $(APT_PACKAGES); \
	fi
	touch $@

$(NPM_STAMP):
	mkdir -p .venv/node && npm install --silent --prefix .venv/node gltf-validator@2.0.0-dev.3.10 three@0.187.0 \
	    puppeteer-core@25.16.0
	touch $@

tools: venv $(APT_STAMP) $(NPM_STAMP)

serve: venv
	$(PY) -m grpc_server.cli serve

# The web view of one avatar of the local store: make view ID=<avatar id> (GLB + GLSL triplane render).
view: tools
	$(PY) -m grpc_server.cli view $(ID)

demo: venv
	$(PY) -m grpc_server.cli demo -o demo_out

test: tools lint
	$(PY) -m pytest -q -rs

# ruff (rules in pyproject.toml) over the whole tree, mypy over avatar, exporter and grpc_server (strict on
# avatar and exporter).
lint: venv
	$(PY) -m ruff check .
	$(PY) -m mypy

bench: venv
	$(PY) -m benchmarks.render
	$(PY) -m benchmarks.create
	$(PY) -m benchmarks.stream
	$(PY) -m benchmarks.export
	$(PY) -m benchmarks.perception
	$(PY) -m benchmarks.fit
	$(PY) -m benchmarks.track

# Issue 9's fidelity protocol on ../shared/reference (portraits, clips); one JSON line, a few minutes.
fidelity: venv
	$(PY) -m benchmarks.fidelity

# Issue 13: the property and fuzz tests with a long search budget (AVATARFORGE_FUZZ_EXAMPLES examples per
# property; `make test` runs a short, fixed one).
FUZZ_EXAMPLES ?= 2000
fuzz: venv
	AVATARFORGE_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(PY) -m pytest -q -p no:cacheprovider --hypothesis-show-statistics \
	    tests/test_fuzz.py tests/test_properties.py

# Issue 13: 8 RenderStreams beside creates, exports, deletes and misbehaving clients; one JSON line.
SOAK_SECONDS ?= 600
soak: venv
	$(PY) -m benchmarks.soak --seconds $(SOAK_SECONDS)

clean:
	rm -rf .venv $(PROTO_OUT) build *.egg-info avatar/march/_build
