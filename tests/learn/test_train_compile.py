"""``compile: true`` (torch.compile for the training steps) and the GPU-readiness benchmark
``bench/bench_device.py``, on the CPU: no test needs a GPU."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from parotidlib.config import ParamsError, TrainConfig
from parotidlib.learn import train
from parotidlib.learn.checkpoint import load_model, read_checkpoint, save_checkpoint
from parotidlib.learn.model import ReducedResNet
from parotidlib.learn.predict import predict_proba
from parotidlib.learn.train import compile_for_training, train_model

ROOT = Path(__file__).resolve().parents[2]
SIZE, BATCH, WIDTHS = 16, 12, (4, 8)
# 12 patients x 4 slices; 3 validation patients leave 36 training slices: 3 full batches, one
# graph to compile.
CONFIG = dict(epochs=1, batch_size=BATCH, lr=1e-3, model_widths=WIDTHS, val_fraction=0.25,
              checkpoint_every=1, num_threads=1)
COMPILE_PROBE_S = 60

# The network and shapes the test trains, compiled and stepped without the library's training
# code: whether torch.compile works here at all (inductor's CPU backend needs a C++ compiler),
# and in how long. Its graph lands in inductor's cache, which the test then reuses.
PROBE = textwrap.dedent(f"""
    import torch, torch.nn.functional as F
    from parotidlib.learn.device import torch_settings
    from parotidlib.learn.model import ReducedResNet
    with torch_settings(torch.device("cpu"), 1):
        model = ReducedResNet(4, 4, {WIDTHS}).to(memory_format=torch.channels_last).train()
        step = torch.compile(model, dynamic=False)
        x = torch.rand({BATCH}, 4, {SIZE}, {SIZE}).contiguous(memory_format=torch.channels_last)
        F.cross_entropy(step(x), torch.zeros({BATCH}, dtype=torch.long)).backward()
""")


@pytest.fixture(scope="module")
def compile_works():
    """Skip (with the reason) where torch.compile cannot run on this CPU within a minute."""
    try:
        proc = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                              timeout=COMPILE_PROBE_S, cwd=ROOT)
    except subprocess.TimeoutExpired:
        pytest.skip(f"torch.compile of a tiny network took over {COMPILE_PROBE_S} s on this "
                    "CPU (cold inductor cache on a loaded machine)")
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-3:])
        pytest.skip(f"torch.compile does not work on this CPU (inductor needs a working C++ "
                    f"compiler): {tail}")


def tiny_data(seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (48, 4, SIZE, SIZE), dtype=np.uint8)
    patients = np.repeat(np.arange(12), 4)
    labels = np.where(np.arange(48) % 4 == 0, 0, 1 + patients % 3)
    return images, labels, patients


def test_compile_must_be_a_bool():
    assert TrainConfig().compile is False
    assert TrainConfig.from_params({"compile": True}).compile is True
    with pytest.raises(ParamsError, match="compile must be true or false, got 'yes'"):
        TrainConfig(compile="yes")


def test_compiled_training_writes_checkpoints_of_the_plain_model(tmp_path, monkeypatch,
                                                                  compile_works):
    compiled = []

    def spy(model, mode=None):
        compiled.append(compile_for_training(model, mode))
        return compiled[-1]

    monkeypatch.setattr(train, "compile_for_training", spy)
    images, labels, patients = tiny_data()
    result = train_model(images, labels, patients, TrainConfig(**CONFIG, compile=True),
                         tmp_path, progress=False)
    assert len(compiled) == 1 and hasattr(compiled[0], "_orig_mod")  # the steps were compiled
    assert len(result.history) == 1 and np.isfinite(result.history["train_loss"]).all()
    state = read_checkpoint(result.last_checkpoint)["model"]
    assert not any(k.startswith("_orig_mod") for k in state)
    plain = ReducedResNet(4, 4, WIDTHS)
    plain.load_state_dict(state)  # strict: the plain module's keys exactly
    model, meta = load_model(result.best_checkpoint)
    assert meta["config"]["compile"] is True
    proba = predict_proba(model, images[:5])
    assert proba.shape == (5, 4) and np.allclose(proba.sum(axis=1), 1, atol=1e-5)
    # Resuming with compile switched off (a speed-only setting) continues the run.
    more = train_model(images, labels, patients, TrainConfig(**{**CONFIG, "epochs": 2}),
                       tmp_path, progress=False)
    assert more.resumed_from == 1 and len(more.history) == 2


def test_checkpoint_from_before_the_compile_key_resumes(tmp_path):
    images, labels, patients = tiny_data(1)
    first = train_model(images, labels, patients, TrainConfig(**CONFIG), tmp_path,
                        progress=False)
    ckpt = read_checkpoint(first.last_checkpoint)
    del ckpt["config"]["compile"]
    save_checkpoint(ckpt, first.last_checkpoint)
    more = train_model(images, labels, patients, TrainConfig(**{**CONFIG, "epochs": 2}),
                       tmp_path, progress=False)
    assert more.resumed_from == 1 and len(more.history) == 2


def test_bench_device_quick_runs_on_the_cpu():
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "bench_device.py"), "--quick", "--device", "cpu",
         "--threads", "1"],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith("device=cpu"), last
    assert "deterministic=yes" in last and "epoch_s=" in last, last
    assert "step_fp32=" in last and "peak_mem_GiB=n/a" in last, last
    assert "error:" not in last, proc.stderr[-2000:]
