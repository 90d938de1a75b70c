"""The built-in physics-based synthetic parotid MRI cohort (docs/synthetic-cohort.md).

Xia et al. 2021's images are private, so the kit ships a generator: per patient a neck
phantom at the parotid level (tissues with proton density, T1, T2, fat fraction and contrast
uptake; a tumour of the patient's histology in one or both glands), imaged with the signal
equations of the paper's three series on one of the three scanners of its Table 2, with
partial volume, a bias field, Rician noise and each scanner's intensity scale.

Modules: :mod:`~parotidlib.synth.composition` (who is in the cohort, Table 1),
:mod:`~parotidlib.synth.tissues`, :mod:`~parotidlib.synth.anatomy`,
:mod:`~parotidlib.synth.tumours`, :mod:`~parotidlib.synth.phantom` (the digital phantom),
:mod:`~parotidlib.synth.scanners` (Table 2), :mod:`~parotidlib.synth.signal` and
:mod:`~parotidlib.synth.render` (the acquisition), :mod:`~parotidlib.synth.patient` and
:mod:`~parotidlib.synth.generate` (the writer).

For external validation, ``generate_cohort(..., scanners=..., histologies=...)`` writes a
shifted cohort (another scanner and case mix, as a second hospital);
:data:`EXTERNAL_SHIFT` is a ready-made one. A case mix may name the further histologies
(:data:`FURTHER_HISTOLOGIES`); ``generate_cohort(..., diffusion=True)`` adds a DWI and an ADC
series from the same anatomy (:mod:`~parotidlib.synth.diffusion`).
"""

from parotidlib.synth.composition import (
    EXTERNAL_SHIFT,
    FURTHER_HISTOLOGIES,
    PAPER_COUNTS,
    PatientSpec,
    apportion,
    check_mix,
    cohort_composition,
    draw_patients,
)
from parotidlib.synth.generate import (
    GENERATOR_VERSION,
    OPTIONAL_COLUMNS,
    STAMP_NAME,
    CohortExistsError,
    generate_cohort,
)
from parotidlib.synth.patient import SimulatedPatient, simulate_patient
from parotidlib.synth.scanners import SCANNERS, ScannerProfile

__all__ = [
    "EXTERNAL_SHIFT",
    "FURTHER_HISTOLOGIES",
    "GENERATOR_VERSION",
    "OPTIONAL_COLUMNS",
    "PAPER_COUNTS",
    "SCANNERS",
    "STAMP_NAME",
    "CohortExistsError",
    "PatientSpec",
    "ScannerProfile",
    "SimulatedPatient",
    "apportion",
    "check_mix",
    "cohort_composition",
    "draw_patients",
    "generate_cohort",
    "simulate_patient",
]
