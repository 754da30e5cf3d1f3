# Set-up on a fresh machine: `make demo` (build + render a zoo spec) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
SG := $(VENV)/bin/skipgraph
# torch 2.13.0 is a CPU build that installs quickly; an unpinned torch may pull a CUDA build.
# constraints.txt keeps it pinned while extras (monai, nnunetv2) are installed.
TORCH ?= torch==2.13.0
PIN := -c constraints.txt

.PHONY: setup demo test test-slow wheel-check docs dot chromium clean

setup: $(VENV)/.installed dot chromium

# constraints.txt pins torch for every install, so no extra can pull in a CUDA build;
# the `monai` extra runs examples/monai_sliding_window.py and the MONAI peer tests; `medical`
# (MONAI, nibabel) the NIfTI volumes, label maps and sliding-window evaluation
$(VENV)/.installed: pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(PIN) "$(TORCH)"
	$(PY) -m pip install -q $(PIN) -e ".[test,monai,medical]"
	touch $@

# the slow tests also drive nnU-Net v2's pipeline (tests/integrations/test_nnunet_docs.py runs docs/nnunet.md)
$(VENV)/.installed-nnunet: $(VENV)/.installed
	$(PY) -m pip install -q $(PIN) -e ".[test,monai,medical,nnunet]"
	touch $@

# the graphviz `dot` binary (images only; .dot output never needs it)
dot:
	@command -v dot >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq graphviz >/dev/null; \
	  else sudo apt-get update -qq && sudo apt-get install -y -qq graphviz >/dev/null; fi; }

# Debian's headless-capable Chromium for the `view` page's browser tests (tests/view/, driven by
# Playwright from the `test` extra); where it cannot be installed those tests skip and say why
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
	  else sudo apt-get update -qq && sudo apt-get install -y -qq chromium >/dev/null; fi; } || \
	  echo "warning: chromium could not be installed; the browser tests (tests/view/) will skip"

demo: setup
	$(SG) build unet_pp --set ds=true --input 1x1x96x96
	$(SG) render unet_pp --set ds=true -o out/unet_pp.svg
	$(SG) render unet -o out/unet.svg
	@echo "diagrams written to out/unet_pp.svg and out/unet.svg"

# the default run (a few minutes); `make test-slow` runs the rest of the zoo-wide checks
test: setup
	$(PY) -m pytest -q -m "not slow"

test-slow: setup $(VENV)/.installed-nnunet
	$(PY) -m pytest -q -m slow

# build the sdist and wheel, install the wheel into a fresh venv, use it from outside the repo
wheel-check:
	.ci/wheel_check.sh

docs: setup
	$(PY) -m skipgraph.render.gallery docs/zoo
	$(SG) schema > docs/skipgraph.schema.json

clean:
	rm -rf $(VENV) out .pytest_cache
