# The study kit's entry points. `make help` lists them.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PARAMS ?= params/default.yaml
JOBS   ?= 1

.DEFAULT_GOAL := help
.PHONY: help report test lint docs lab explore ablation cv external synth bench clean-venv

help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

report: $(STAMP) ## Run the whole study on the built-in synthetic cohort -> reports/<run>/report.html
	$(PY) -m parotidlib run --params $(PARAMS)

test: $(STAMP) ## Run the test suite
	$(PY) -m pytest -q

lint: $(STAMP) ## Check the code and the notebooks with ruff
	$(PY) -m ruff check parotidlib tests bench notebooks

docs: $(STAMP) ## Regenerate the stage tables of README.md and docs/design.md from run/stages.py
	$(PY) -m parotidlib.run.stage_docs

lab: $(STAMP) ## Open JupyterLab on the notebooks, the explorers 00 and 90 first
	$(VENV)/bin/jupyter lab notebooks/00-explore-cohort.ipynb notebooks/90-explore-run.ipynb

explore: $(STAMP) ## Serve the cohort and run explorers as a code-free app (Voila), http://localhost:8866
	mkdir -p $(VENV)/explore
	ln -sf $(CURDIR)/notebooks/00-explore-cohort.ipynb $(CURDIR)/notebooks/90-explore-run.ipynb $(VENV)/explore/
	$(VENV)/bin/voila $(VENV)/explore --port=8866 --no-browser

ablation: $(STAMP) ## Run the channel ablation (the paper's Table 3) -> reports/<run>/ablation.html
	$(PY) -m parotidlib ablation --params $(PARAMS) --jobs $(JOBS)

cv: $(STAMP) ## 5-fold cross-validation over all patients -> reports/<params>_cv5/cv.html
	$(PY) -m parotidlib cv --params $(PARAMS) --folds 5 --jobs $(JOBS)

external: $(STAMP) ## Apply the newest run's model to the shifted synthetic cohort -> reports/<run>_external/report.html
	$(PY) -m parotidlib external --params $(PARAMS)

synth: $(STAMP) ## Generate the built-in synthetic cohort into data/synthetic
	$(PY) -m parotidlib synth --out data/synthetic --patients 233 --seed 0

bench: $(STAMP) ## Run the benchmarks under bench/ (prints figures, asserts nothing)
	$(PY) bench/bench_synth.py
	$(PY) bench/bench_curate.py
	$(PY) bench/bench_train.py
	$(PY) bench/bench_import.py
	$(PY) bench/bench_predict.py
	$(PY) bench/bench_radiomics.py
	$(PY) bench/bench_saliency.py
	$(PY) bench/bench_report_additions.py
	$(PY) bench/bench_explore.py
	$(PY) bench/bench_contention.py

clean-venv: ## Remove the virtual environment
	rm -rf $(VENV)
