# gaussvae_ros: set-up, tests, demo and benchmarks on a machine with Python 3.11 and no ROS install.
#   make demo    the main job (creates .venv, installs pinned dependencies, builds, runs the demo)
#   make test    the test suite (same set-up first)
#   make bench   benchmarks; figures go to stdout and out/bench/*.json (see BENCHMARKS.md)
# Everything is installed into .venv from PyPI with pinned versions (requirements*.txt +
# constraints.txt). On a robot with an NVIDIA GPU, install the CUDA build of torch==2.13.0 into the
# venv first: the pins then keep it.

SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# DDS traffic stays on loopback; each make invocation gets its own domain.
export ROS_AUTOMATIC_DISCOVERY_RANGE := LOCALHOST
export ROS_DOMAIN_ID ?= $(shell echo $$(( $$$$ % 100 + 1 )))
ROS_ENV := . build_ros/env.sh
OUT ?= out
# The package builds its rasterizer portably; .venv is built and used on this machine only, so it
# opts in to -march=native (GAUSSVAE_NATIVE=0 make build: the portable build; BENCHMARKS.md).
export GAUSSVAE_NATIVE ?= 1

.PHONY: all setup build interfaces test test-compat test-jazzy demo bench clean

all: build

$(STAMP): requirements.txt requirements-ros.txt requirements-dev.txt constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade "pip==25.3"
	$(PY) -m pip install -q torch==2.13.0 -c constraints.txt
	$(PY) -m pip install -q -c constraints.txt -r requirements.txt -r requirements-ros.txt -r requirements-dev.txt
	touch $@

setup: $(STAMP)

# The package itself (compiles the rasterizer) and the ROS 2 interfaces in msg/.
build: $(STAMP)
	$(PY) -m pip install -q --no-build-isolation --no-deps -e .
	scripts/build_interfaces.sh $(VENV) build_ros

interfaces: $(STAMP)
	scripts/build_interfaces.sh $(VENV) build_ros

test: build
	$(ROS_ENV) && $(PY) -m pytest test -q -p no:cacheprovider

# The suite again in a second venv pinned to the oldest supported versions (constraints-compat.txt:
# numpy 1.23, scipy 1.9, scikit-image 0.20, Pillow 9.3, matplotlib 3.6) with the same ROS wheels;
# its own interface build (against that numpy) in build_ros_compat. Set-up is cached by the stamp.
COMPAT_VENV := .venv-compat
COMPAT_PY := $(COMPAT_VENV)/bin/python
COMPAT_STAMP := $(COMPAT_VENV)/.installed
$(COMPAT_STAMP): requirements.txt requirements-ros.txt requirements-dev.txt constraints-compat.txt
	test -x $(COMPAT_PY) || $(PYTHON) -m venv $(COMPAT_VENV)
	$(COMPAT_PY) -m pip install -q --upgrade "pip==25.3"
	$(COMPAT_PY) -m pip install -q torch==2.13.0 -c constraints-compat.txt
	$(COMPAT_PY) -m pip install -q -c constraints-compat.txt -r requirements.txt -r requirements-ros.txt -r requirements-dev.txt
	touch $@

test-compat: $(COMPAT_STAMP)
	# editable install once (it shares the source tree's compiled rasterizer, which make build keeps fresh)
	$(COMPAT_PY) -m pip show -q gaussvae_ros >/dev/null 2>&1 || $(COMPAT_PY) -m pip install -q --no-build-isolation --no-deps -e .
	scripts/build_interfaces.sh $(COMPAT_VENV) build_ros_compat
	. build_ros_compat/env.sh && $(COMPAT_PY) -c 'import numpy, scipy, skimage, PIL; print("test-compat: numpy", numpy.__version__, "scipy", scipy.__version__, "scikit-image", skimage.__version__, "Pillow", PIL.__version__)'
	. build_ros_compat/env.sh && GAUSSVAE_ROS_ENV=build_ros_compat/env.sh $(COMPAT_PY) -m pytest test -q -p no:cacheprovider

# The ROS parts of the suite (nodes, graph, player, launch files, colcon install) on ROS 2 Jazzy
# from PyPI wheels (requirements-ros-jazzy.txt) over Ubuntu 24.04's numpy / scipy / scikit-image /
# Pillow (constraints-jazzy.txt), with its own interface build in build_ros_jazzy.
JAZZY_VENV := .venv-jazzy
JAZZY_PY := $(JAZZY_VENV)/bin/python
JAZZY_STAMP := $(JAZZY_VENV)/.installed
JAZZY_TESTS := test/nodes test/apps/test_graph.py test/apps/test_graph_recordings.py test/apps/test_player.py \
	test/apps/test_player_qos.py test/apps/test_launch.py test/apps/test_colcon_install.py test/test_package_xml.py
$(JAZZY_STAMP): requirements.txt requirements-ros-jazzy.txt requirements-dev.txt constraints-jazzy.txt
	test -x $(JAZZY_PY) || $(PYTHON) -m venv $(JAZZY_VENV)
	$(JAZZY_PY) -m pip install -q --upgrade "pip==25.3"
	$(JAZZY_PY) -m pip install -q torch==2.13.0 -c constraints-jazzy.txt
	$(JAZZY_PY) -m pip install -q -c constraints-jazzy.txt -r requirements.txt -r requirements-ros-jazzy.txt -r requirements-dev.txt
	touch $@

test-jazzy: $(JAZZY_STAMP)
	# editable install once (it shares the source tree's compiled rasterizer, which make build keeps fresh)
	$(JAZZY_PY) -m pip show -q gaussvae_ros >/dev/null 2>&1 || $(JAZZY_PY) -m pip install -q --no-build-isolation --no-deps -e .
	scripts/build_interfaces.sh $(JAZZY_VENV) build_ros_jazzy
	. build_ros_jazzy/env.sh && $(JAZZY_PY) -c 'import numpy, rclpy; print("test-jazzy: rclpy from", rclpy.__file__, "numpy", numpy.__version__)'
	. build_ros_jazzy/env.sh && GAUSSVAE_ROS_ENV=build_ros_jazzy/env.sh $(JAZZY_PY) -m pytest $(JAZZY_TESTS) -q -p no:cacheprovider

demo: build
	$(ROS_ENV) && $(PY) -m gaussvae_ros.apps.demo --out $(OUT)/demo

# Store size for the store benchmark (the issue's figure is 10,000,000: make bench STORE_RECORDS=10000000).
STORE_RECORDS ?= 1000000
bench: build
	mkdir -p $(OUT)/bench
	$(ROS_ENV) && $(PY) -m gaussvae_ros.cli.main bench --json | tee $(OUT)/bench/core.json
	$(ROS_ENV) && $(PY) benchmarks/bench_blend.py --json | tee $(OUT)/bench/blend.json
	$(ROS_ENV) && $(PY) benchmarks/bench_replay.py --repeat 3 --json | tee $(OUT)/bench/replay.json
	$(ROS_ENV) && $(PY) benchmarks/bench_live.py --json | tee $(OUT)/bench/live.json
	$(ROS_ENV) && $(PY) benchmarks/bench_store.py --records $(STORE_RECORDS) --json | tee $(OUT)/bench/store.json

clean:
	rm -rf build_ros build_ros_compat build_ros_jazzy build *.egg-info $(OUT) gaussvae_ros/core/_raster*.so
