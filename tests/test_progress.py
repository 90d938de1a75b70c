"""Progress bars: plain text in the processes that run the pipeline (and their kernels),
tqdm.auto (a widget in a notebook) elsewhere."""

import subprocess
import sys


def bar_class(setup: str) -> str:
    code = (f"{setup}\nfrom parotidlib.progress import tqdm\n"
            "bar = tqdm(total=1, disable=True); print(type(bar).__module__)")
    env = {k: v for k, v in __import__("os").environ.items() if k != "PAROTIDLIB_PROGRESS"}
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, check=True).stdout.strip()


def test_the_pipeline_processes_use_text_bars_and_others_tqdm_auto():
    assert bar_class("import parotidlib.run.stages") == "tqdm.std"
    # tqdm.auto: outside a notebook kernel its asyncio-capable text bar, a widget inside one
    assert bar_class("import os") == "tqdm.asyncio"
