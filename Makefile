# The two commands of the README, and the steps they are made of.
#   make book   set up .venv, fetch the data, execute the chapters, build the HTML book into _build/html
#   make test   set up .venv and Chromium, render the book, lint (ruff), run the unit tests, the browser test of the
#               rendered book and every chapter in the smoke profile (pytest tests --nbmake book)
# Options: PROFILE=smoke|quick|full (chapters' own default: quick), DEVICE=cpu|cuda, CHAPTERS="00_intro ...".

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PROFILE ?=
DEVICE ?=
CHAPTERS ?=
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

.PHONY: book test venv browser lint data run-chapters html constraints clean

book: venv data run-chapters html

# A chapter cell may take minutes on a loaded machine; the timeout only catches a hung kernel (CI allows 90 min).
test: venv browser html lint
	$(BIN)/python -m pytest tests --nbmake book --nbmake-timeout=3600

# ruff (pinned): pyflakes, pycodestyle, import order, Google docstrings, bugbear; configured in pyproject.toml.
lint: venv
	$(BIN)/ruff check .

# Debian's Chromium and ChromeDriver, for the browser test of the rendered book (tests/test_rendered_book.py).
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; else \
		$(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -qq chromium chromium-driver; fi

venv: $(STAMP)

# Re-installs when the pins change. torch==2.13.0 resolves to the CPU wheel where one is provided.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[book,test]'
	touch $@

data: venv
	$(BIN)/perturbx data fetch --all

run-chapters: venv
	$(BIN)/perturbx book run $(if $(PROFILE),--profile $(PROFILE)) $(if $(DEVICE),--device $(DEVICE)) \
		$(if $(CHAPTERS),--chapters $(CHAPTERS))

# Renders the outputs stored in the chapters; never executes them (see _config.yml).
html: venv
	$(BIN)/jupyter-book build . -W -n --keep-going

# Refresh constraints.txt from the current environment after changing a pin in pyproject.toml.
constraints: venv
	{ sed -n '1,3p' constraints.txt; $(BIN)/python -m pip freeze --exclude-editable --disable-pip-version-check \
		| grep -v '^perturbx' | sed 's/^torch==\(.*\)+cpu$$/torch==\1/'; } > constraints.txt.new
	mv constraints.txt.new constraints.txt

clean:
	rm -rf _build
