"""Benchmark: a trained model applied to 20 new patients at 64 px, curation included.

Uses the newest default run's model bundle under reports/ (``make report``), or, when there
is none, trains the default network for one epoch on a small synthetic cohort (untimed) to
get a bundle of the same size. Generates a shifted synthetic cohort of new patients once
(untimed: the cohort stands for a hospital's files), then times the whole predict chain
(``python -m parotidlib predict``: notebooks 70-72, curation, predictions, statistics, report)
into a fresh folder, and the library calls alone (curation and prediction, no notebooks) as
the baseline of the same run. Prints the chain's wall-clock seconds last. Target (issue
tracker): under 60 s on the 2-core machine.

    python bench/bench_predict.py [--patients 20] [--seed 11]
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from parotidlib.config import CurationConfig, TrainConfig
from parotidlib.data.curate import curate_cohort
from parotidlib.learn import apply
from parotidlib.learn.bundle import load_bundle, write_bundle
from parotidlib.learn.train import train_model
from parotidlib.paths import data_dir, reports_dir
from parotidlib.run.predict import newest_run, run_predict
from parotidlib.synth import EXTERNAL_SHIFT, generate_cohort


def _bundle(work: Path) -> Path:
    run = newest_run(reports_dir(), "default")
    if run is not None:
        print(f"model: the bundle of {run.name}")
        return run / "bundle.pt"
    print("no default run under reports/: training the default network for 1 epoch")
    manifest = generate_cohort(work / "train_cohort", n_patients=12, seed=0)
    run = work / "train_run"
    ds = curate_cohort(manifest, run / "data", CurationConfig(test_fraction=0.25),
                       progress=False)
    train = ds.indices("train")
    train_model(np.asarray(ds.images)[train], ds.labels[train],
                ds.slices["patient_id"].to_numpy()[train],
                TrainConfig(epochs=1, val_fraction=0.0), run / "model", channels=ds.channels,
                progress=False)
    (run / "cohort.json").write_text(json.dumps({"manifest": str(manifest),
                                                 "fingerprint": None}))
    return write_bundle(run)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=20)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    warnings.simplefilter("ignore")
    work = Path(tempfile.mkdtemp(prefix="bench_predict_"))
    try:
        bundle_path = _bundle(work)
        manifest = generate_cohort(data_dir() / f"bench_new_patients_n{args.patients}",
                                   n_patients=args.patients, seed=args.seed, **EXTERNAL_SHIFT)
        bundle = load_bundle(bundle_path)
        print(f"{args.patients} new patients at {bundle.curation.image_size} px, channels "
              f"{', '.join(bundle.channels)}")
        start = time.perf_counter()
        curate_cohort(manifest, work / "lib" / "data", apply.curation_for(bundle),
                      progress=False, external=True)
        curated = time.perf_counter() - start
        apply.predict_cohort(bundle, work / "lib")
        library = time.perf_counter() - start
        print(f"library calls alone: curation {curated:.1f} s, curation + prediction "
              f"{library:.1f} s")
        start = time.perf_counter()
        result = run_predict(bundle_path, manifest, name="bench", reports_dir=work / "reports")
        chain = time.perf_counter() - start
        stages = ", ".join(f"{k} {v:.1f} s" for k, v in result.timing_s.items())
        print(f"predict chain by stage: {stages}; {chain / library:.1f} x the library calls")
        print(f"predict {args.patients} new patients at {bundle.curation.image_size} px, "
              f"curation and report included: {chain:.1f} s")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
