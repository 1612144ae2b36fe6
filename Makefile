# Polyseek: `make run` sets everything up and serves the demo; `make test` runs the tests.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
CORPUS ?= data
INDEX  ?= .polyseek/index
PORT   ?= 8501
API_PORT ?= 8000
STAMP  := $(VENV)/.installed
RAY_STAMP := $(VENV)/.installed-ray
EXTRAS ?=

.PHONY: install browser run serve index test bench clean
# The virtual environment with the package (editable) and the test tools; redone when pyproject.toml
# or constraints.txt change. `make install EXTRAS=ray` (comma-separated extras) adds those too.
install: $(STAMP)
ifneq ($(strip $(EXTRAS)),)
	$(PIP) install --quiet -c constraints.txt -e '.[test,$(strip $(EXTRAS))]'
endif

# The ray extra (builds on a Ray cluster), which the test suite exercises on a local Ray instance.
$(RAY_STAMP): $(STAMP)
	$(PIP) install --quiet -c constraints.txt -e '.[test,ray]'
	touch $(RAY_STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

# Builds the demo index if there is none, then serves the page on http://localhost:$(PORT).
run: install
	test -f $(INDEX)/CURRENT || $(PY) -m index build $(CORPUS) --index $(INDEX)
	POLYSEEK_INDEX=$(INDEX) POLYSEEK_CORPUS=$(CORPUS) $(PY) -m streamlit run app.py --server.port $(PORT)

# The HTTP API on http://127.0.0.1:$(API_PORT) (OpenAPI at /docs); writes need POLYSEEK_API_TOKEN.
serve: install
	test -f $(INDEX)/CURRENT || $(PY) -m index build $(CORPUS) --index $(INDEX)
	$(PY) -m search.serve --index $(INDEX) --corpus $(CORPUS) --port $(API_PORT)

# Rebuilds the index of $(CORPUS) from scratch (`.venv/bin/python -m index update` embeds only what changed).
index: install
	$(PY) -m index build $(CORPUS) --index $(INDEX)

# The whole suite (PYTEST_ARGS='-m "not browser"' or a file to run less).
test: install $(RAY_STAMP) browser
	$(PY) -m pytest $(PYTEST_ARGS)

# The end-to-end test drives Debian's Chromium (Playwright downloads no browser here). Installed
# when missing, as root or with password-less sudo; otherwise that one test is skipped (not in CI).
browser:
	@if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then :; \
	elif ! command -v apt-get >/dev/null 2>&1; then echo "note: no chromium and no apt-get: the browser test will be skipped"; \
	else SUDO=; [ "$$(id -u)" = 0 ] || SUDO="sudo -n"; \
	  echo "Installing Debian's chromium for the browser test..."; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium fonts-dejavu-core >/dev/null \
	  || echo "note: could not install chromium: the browser test will be skipped (CI fails instead)"; fi

# Performance figures (BENCHMARKS.md): throughput and latency against the bare encoder and txtai.
bench: install
	$(PIP) install --quiet -c constraints.txt -e '.[bench]'
	$(PY) benchmarks/speed.py
	$(PY) benchmarks/scale.py

# Removes the virtual environment and the demo index (not the model cache in ~/.cache/polyseek).
clean:
	rm -rf $(VENV) .polyseek .pytest_cache
