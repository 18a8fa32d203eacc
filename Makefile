# Shortcuts; each calls kit.py, which needs nothing but Python 3.11+.
PYTHON ?= python3
JOBS := setup demo test serve forms lab

.PHONY: $(JOBS) clean
$(JOBS):
	$(PYTHON) kit.py $@
clean:
	rm -rf .venv build .pytest_cache .ruff_cache .hypothesis
