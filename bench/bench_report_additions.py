"""Benchmark: what the radiomics baseline and the saliency analysis add to ``make report``.

Uses the newest default run under reports/ (``make report`` first; its data, checkpoint and
predictions). In a scratch copy of that run folder (symlinks) it times, in one process and one
after the other:

* the CNN's own evaluation work, :func:`parotidlib.learn.predict.predict_run` (every slice):
  the baseline of this run, what 30-evaluate does without the radiomics baseline;
* the radiomics baseline, :func:`parotidlib.radiomics.study.radiomics_baseline` (features of
  every slice, the inner-CV grid search, predictions): what ``radiomics: true`` adds to
  30-evaluate;
* the saliency stage as the pipeline runs it: ``45-saliency.ipynb`` executed by papermill
  (kernel start, imports, Grad-CAM of every test slice, the randomised copy, the examples,
  writing ``saliency.json`` and ``saliency_maps.npz``);
* drawing and saving the ``saliency_examples`` figure (PNG at 300 dpi and PDF), what the
  report stage adds.

Prints each figure and, last, the seconds added. Targets (issue 15): the baseline under 60 s,
the saliency under 30 s, on the 2-core machine.

    python bench/bench_report_additions.py [--run reports/<run>]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from parotidlib.learn.explain import read_saliency
from parotidlib.learn.predict import predict_run
from parotidlib.paths import reports_dir
from parotidlib.radiomics.study import radiomics_baseline
from parotidlib.report.figures import save_figure
from parotidlib.report.figures.saliency import plot_saliency_examples
from parotidlib.report.run_figures import saliency_titles
from parotidlib.run.pipeline import execute_stage, notebook_parameters
from parotidlib.run.predict import newest_run
from parotidlib.run.stages import stage_named

LINKED = ("data", "model", "predictions.csv", "cohort.json", "params.yaml")


def _timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=None,
                        help="run folder (default: the newest default run under reports/)")
    args = parser.parse_args()
    run = args.run or newest_run(reports_dir(), "default")
    if run is None or not (run / "predictions.csv").is_file():
        raise SystemExit("no finished default run under reports/: run `make report` first")
    from parotidlib.params import load_params

    params = load_params(run / "params.yaml")
    channels = tuple(params["channels"])
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp) / "run"
        scratch.mkdir()
        for name in LINKED:
            os.symlink((run / name).resolve(), scratch / name)
        _, cnn_s = _timed(lambda: predict_run(scratch, channels=channels,
                                              checkpoint=params["checkpoint"],
                                              device=params["device"]))
        (_, info), radiomics_s = _timed(lambda: radiomics_baseline(
            scratch / "data", channels=channels, seed=params["seed"],
            model=params["radiomics_model"]))
        stage = stage_named("saliency")
        _, stage_s = _timed(lambda: execute_stage(
            stage, scratch, notebook_parameters(stage, params, scratch)))
        summary, arrays = read_saliency(scratch)

        def draw() -> None:
            fig = plot_saliency_examples(arrays["images"], arrays["maps"],
                                         list(arrays["channels"]), saliency_titles(summary),
                                         method_name=summary["method_name"])
            save_figure(fig, scratch, "saliency_examples", synthetic=True)

        _, figure_s = _timed(draw)
    features_s, fit_s = info["seconds"]["features"], info["seconds"]["fit"]
    print(f"run {run.name}: {summary['n_slices']} test slices, {len(summary['examples'])} "
          f"examples, {os.cpu_count()} cpus")
    print(f"CNN predict_run (baseline): {cnn_s:.1f} s")
    print(f"radiomics baseline: {radiomics_s:.1f} s (features {features_s:.1f} s, fit "
          f"{fit_s:.1f} s) = {radiomics_s / cnn_s:.1f} x the CNN's predict_run")
    print(f"saliency stage (papermill, 45-saliency): {stage_s:.1f} s; examples figure "
          f"{figure_s:.1f} s; randomisation check: mean Spearman "
          f"{summary['randomisation']['mean_spearman']}")
    print(f"added to make report: radiomics {radiomics_s:.1f} s (target < 60), saliency "
          f"{stage_s + figure_s:.1f} s (target < 30)")


if __name__ == "__main__":
    main()
