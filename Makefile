# densehybrid_ros: set-up and everyday commands. Every target creates .venv and installs the
# pinned requirements and the package first (only when they changed).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Fast DDS profile of every process (densehybrid_ros/core/transport.py sets the same when unset).
export FASTRTPS_DEFAULT_PROFILES_FILE ?= $(CURDIR)/config/fastdds.xml
export FASTDDS_DEFAULT_PROFILES_FILE ?= $(CURDIR)/config/fastdds.xml

.PHONY: setup demo test bench gpu-check lint clean

setup: $(STAMP)

$(STAMP): requirements/core.txt requirements/ros.txt requirements/dev.txt requirements/deploy.txt \
		requirements/interfaces.txt setup.py package.xml \
		$(shell find interfaces -type f ! -path '*/__pycache__/*')
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check \
		-r requirements/core.txt -r requirements/ros.txt -r requirements/dev.txt \
		-r requirements/deploy.txt
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	# vision_msgs is not on PyPI: built from interfaces/ with cmake and gcc (about 1 min the
	# first time; skipped when already built from these sources)
	bash interfaces/build.sh $(VENV)
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/densehybrid-demo --output out/demo

test: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider -n 2 --dist loadfile --durations=15 --rerun-show-tracebacks test

bench: $(STAMP)
	$(BIN)/densehybrid-bench --json out/bench/bench.json

# On a CUDA machine: install requirements/gpu.txt, check equivalence, print fps at 1024x2048.
gpu-check: $(STAMP)
	mkdir -p out
	$(BIN)/densehybrid-bench gpu-check --setup --json out/gpu_check.json

lint: $(STAMP)
	$(BIN)/python -m flake8 densehybrid_ros test launch setup.py

clean:
	rm -rf out build install log *.egg-info
