# StandIn: `make demo` and `make test` do all the set-up on a fresh machine.
PYTHON ?= python3.11
VENV := .venv
VENV45 := .venv-bpy45
PY := $(VENV)/bin/python
PY45 := $(VENV45)/bin/python
DEMO_OUT ?= demo-out
PIP_QUIET ?= -q

.PHONY: venv venv45 demo test test-bpy50 test-bpy45 bench ext clean

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt constraints.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install $(PIP_QUIET) --upgrade pip
	$(PY) -m pip install $(PIP_QUIET) -r requirements.txt -c constraints.txt
	$(PY) -m pip install $(PIP_QUIET) --no-deps -e .
	touch $@

venv45: $(VENV45)/.installed

$(VENV45)/.installed: requirements-bpy45.txt constraints.txt pyproject.toml
	test -x $(PY45) || $(PYTHON) -m venv $(VENV45)
	$(PY45) -m pip install $(PIP_QUIET) --upgrade pip
	$(PY45) -m pip install $(PIP_QUIET) -r requirements-bpy45.txt -c constraints.txt
	$(PY45) -m pip install $(PIP_QUIET) --no-deps -e .
	touch $@

demo: venv
	$(VENV)/bin/standin demo --out $(DEMO_OUT)

# Every test on Blender 5.0, then the subset marked bpy45 on Blender 4.5 LTS.
test: test-bpy50 test-bpy45

test-bpy50: venv
	$(PY) -m pytest

test-bpy45: venv45
	$(PY45) -m pytest -m bpy45 tests/blender

bench: venv
	$(PY) -m bench

# Fetch the bundled wheels (downloaded once into ~/.cache/standin/extension-wheels), write the manifest's wheel lists, validate it and
# build one installable zip per platform into dist/ (standin-<version>-<platform>.zip).
ext: venv
	$(PY) -m standin.tools.extension build dist

clean:
	rm -rf $(VENV) $(VENV45) dist demo-out .pytest_cache
