"""Two models on the same test patients: the CNN against a baseline (the radiomics model).

:func:`compare_models` computes the baseline's results as the CNN's are computed
(:func:`parotidlib.evaluation.results.slice_block`, Table 4, Table 5 with the rule of
Figure 5) and the paired differences on the same test slices: a patient-level paired
bootstrap of the accuracy and of the micro-AUC difference (``evaluation.paired``; Field &
Welsh 2007), McNemar's exact test on the slices beside it as a secondary figure (it treats
slices as independent; McNemar 1947). Written into metrics.json as ``radiomics`` and
``cnn_vs_radiomics``; :func:`paired_comparison` is also the cross-validation's comparison on
the pooled out-of-fold slices (``evaluation.cv``). Torch-free.

References
----------
Field CA, Welsh AH. Bootstrapping clustered data. J R Stat Soc B 2007; 69:369-390.
McNemar Q. Note on the sampling error of the difference between correlated proportions or
    percentages. Psychometrika 1947; 12:153-157.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from parotidlib.evaluation.decision import diagnose_patients
from parotidlib.evaluation.diagnostic_accuracy import patient_confusion, patient_table5, table4
from parotidlib.evaluation.metrics import select_split
from parotidlib.evaluation.paired import aligned_pair, paired_bootstrap_difference
from parotidlib.evaluation.results import slice_block
from parotidlib.evaluation.schema import to_jsonable
from parotidlib.evaluation.stats import mcnemar_exact
from parotidlib.study import PAPER_CLASSES, ClassScheme

__all__ = ["MCNEMAR_CAVEAT", "compare_models", "paired_comparison"]

#: Beside McNemar's slice p-value: why it is secondary to the patient-level bootstrap.
MCNEMAR_CAVEAT = "slices of a patient are correlated; treats them as independent"


def paired_comparison(cnn: pd.DataFrame, baseline: pd.DataFrame, resamples: int, seed: int,
                      slices: str = "test", scheme: ClassScheme = PAPER_CLASSES
                      ) -> dict[str, Any]:
    """CNN minus baseline on the same slices: ``cnn_vs_radiomics`` of metrics.json.

    Parameters
    ----------
    cnn, baseline : DataFrame
        The two models' predictions of the same slices (matched by
        :func:`parotidlib.evaluation.paired.aligned_pair`; every row is used, so select the
        split first).
    resamples, seed : int
        The patient-level paired bootstrap
        (:func:`parotidlib.evaluation.paired.paired_bootstrap_difference`; Field & Welsh 2007).
    slices : str
        Which slices these are, for ``method`` (``"test"``, ``"out-of-fold"``).
    scheme : ClassScheme
        The run's class scheme (default the paper's four classes).

    Returns
    -------
    dict
        ``accuracy`` and ``micro_auc`` (paired bootstrap blocks: value, ci95, p_two_sided,
        counts), ``mcnemar`` (McNemar's exact test on the slices' paired correctness,
        McNemar 1947: ``only_cnn_correct``, ``only_radiomics_correct``, ``pvalue``,
        ``caveat``) and ``method``.
    """
    pair = aligned_pair(cnn, baseline, scheme=scheme)
    mcnemar = mcnemar_exact((pair["predicted_label_a"] == pair["true_label"]).to_numpy(bool),
                            (pair["predicted_label_b"] == pair["true_label"]).to_numpy(bool))
    return {
        "accuracy": paired_bootstrap_difference(cnn, baseline, resamples, seed, "accuracy",
                                                scheme),
        "micro_auc": paired_bootstrap_difference(cnn, baseline, resamples, seed, "micro_auc",
                                                 scheme),
        "mcnemar": {"only_cnn_correct": mcnemar["b"], "only_radiomics_correct": mcnemar["c"],
                    "pvalue": mcnemar["pvalue"], "caveat": MCNEMAR_CAVEAT},
        "method": f"CNN minus radiomics on the same {slices} slices; patient-level paired "
                  "bootstrap",
    }


def compare_models(cnn: pd.DataFrame, baseline: pd.DataFrame, params: Mapping[str, Any],
                   info: Mapping[str, Any] | None = None,
                   scheme: ClassScheme = PAPER_CLASSES) -> dict[str, Any]:
    """The baseline's results and its paired comparison with the CNN on the test split.

    Parameters
    ----------
    cnn, baseline : DataFrame
        predictions.csv of the CNN and of the baseline (the same slices).
    params : mapping
        ``malignant_threshold``, ``bootstrap_resamples``, ``bootstrap_seed``.
    info : mapping, optional
        What the baseline is (``radiomics.study.radiomics_baseline``'s info).
    scheme : ClassScheme
        The run's class scheme (default the paper's four classes); both models predict its
        classes.

    Returns
    -------
    dict
        ``{"radiomics": {"info", "slice": {"test": ...}, "table4", "patient"},
        "cnn_vs_radiomics": {"accuracy", "micro_auc", "mcnemar", "method"}}``; the
        differences are CNN minus baseline.
    """
    resamples, seed = int(params["bootstrap_resamples"]), int(params["bootstrap_seed"])
    threshold = int(params["malignant_threshold"])
    test_b = select_split(baseline, "test", scheme)
    test_c = select_split(cnn, "test", scheme)
    patients = diagnose_patients(test_b, malignant_threshold=threshold, scheme=scheme)
    block = {
        "info": dict(info or {}),
        "slice": {"test": slice_block(baseline, "test", resamples, seed, scheme)},
        "table4": table4(test_b, scheme=scheme),
        "patient": {"table5": patient_table5(patients, scheme=scheme),
                    "confusion_matrix": patient_confusion(patients, scheme).tolist(),
                    "confusion_labels": list(scheme.classes[1:])},
    }
    comparison = paired_comparison(test_c, test_b, resamples, seed, scheme=scheme)
    return to_jsonable({"radiomics": block, "cnn_vs_radiomics": comparison})
