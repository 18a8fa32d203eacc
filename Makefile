# Shortcuts; each calls kit.py, which needs nothing but Python 3.11+.
PYTHON ?= python3

.PHONY: setup demo test serve clean
setup:
	$(PYTHON) kit.py setup
demo:
	$(PYTHON) kit.py demo
test:
	$(PYTHON) kit.py test
serve:
	$(PYTHON) kit.py serve
clean:
	rm -rf .venv build .pytest_cache .ruff_cache .hypothesis
