# Shortcuts; each calls kit.py, which needs nothing but Python 3.11+.
PYTHON ?= python3

.PHONY: setup demo test serve forms lab clean
setup:
	$(PYTHON) kit.py setup
demo:
	$(PYTHON) kit.py demo
test:
	$(PYTHON) kit.py test
serve:
	$(PYTHON) kit.py serve
forms:
	$(PYTHON) kit.py forms
lab:
	$(PYTHON) kit.py lab
clean:
	rm -rf .venv build .pytest_cache .ruff_cache .hypothesis
