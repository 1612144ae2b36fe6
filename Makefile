# Polyseek: `make run` sets everything up and serves the demo; `make test` runs the tests.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
CORPUS ?= data
INDEX  ?= .polyseek/index
STAMP  := $(VENV)/.installed

.PHONY: install run index test clean
install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

# Builds the demo index if there is none; the Streamlit front end (app.py) comes next.
run: install
	test -f $(INDEX)/CURRENT || $(PY) -m index build $(CORPUS) --index $(INDEX)
	$(PY) -m search "missile defense guarantees" -k 5 --index $(INDEX)
	@echo 'Search it yourself: $(PY) -m search "your question, any language" --index $(INDEX)'

index: install
	$(PY) -m index build $(CORPUS) --index $(INDEX)

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .polyseek .pytest_cache
