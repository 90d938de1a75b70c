"""Progress bars: notebook widgets where a person watches, plain text where the kit runs.

In JupyterLab (and Voila) a bar is an ipywidgets progress bar (``tqdm.auto``); in the
notebooks the pipeline executes with papermill, in batch members and in SLURM jobs it is
tqdm's plain text bar, which an executed notebook and a log file keep readable. The
pipeline's processes say so by ``PAROTIDLIB_PROGRESS=text`` in the environment, which the
kernels they start inherit (set by :mod:`parotidlib.run`).
"""

from __future__ import annotations

import os
from typing import Any

#: The environment variable; "text" forces plain text bars.
VARIABLE = "PAROTIDLIB_PROGRESS"


def tqdm(*args: Any, **kwargs: Any):
    """A tqdm bar: ``tqdm.auto`` (a widget in a notebook) unless ``PAROTIDLIB_PROGRESS`` is
    "text"; arguments as :class:`tqdm.tqdm`."""
    if os.environ.get(VARIABLE, "") == "text":
        from tqdm import tqdm as bar
    else:
        from tqdm.auto import tqdm as bar
    return bar(*args, **kwargs)
