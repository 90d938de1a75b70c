"""The learning-rate schedule (learn/schedule.py) in a checkpoint: the scheduler's state is
its position, never the schedule, which the config gives when a run resumes."""

from __future__ import annotations

import pickle

import pytest
import torch

from parotidlib.learn.schedule import build_optimizer, build_scheduler


def _stepped(epochs: int, **schedule) -> tuple[torch.optim.Optimizer, object, list[float]]:
    """An optimiser and its scheduler after ``epochs`` epochs, and the lr of each epoch."""
    torch.manual_seed(0)
    opt = build_optimizer(torch.nn.Linear(3, 2).parameters(), "adam", lr=1.0)
    sched = build_scheduler(opt, **schedule)
    lrs = []
    for _ in range(epochs):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return opt, sched, lrs


def test_the_state_holds_the_position_not_the_schedule_and_pickles():
    _, sched, lrs = _stepped(4, start=2, every=1, factor=0.5)
    assert lrs == [1.0, 1.0, 0.5, 0.25]
    state = sched.state_dict()
    assert state["last_epoch"] == 4 and state["lr_lambdas"] == [{}]
    assert pickle.loads(pickle.dumps(sched.lr_lambdas[0]))(5) == pytest.approx(0.5 ** 4)


@pytest.mark.parametrize("saved_lambda", [{}, {"start": 0, "every": 1, "factor": 0.1}])
def test_a_resumed_scheduler_follows_its_own_schedule_from_the_saved_position(saved_lambda):
    """A checkpoint's scheduler state (this kit's, or an older kit's that saved its schedule)
    sets where the run is; the schedule built from the config rules from there on, as in an
    uninterrupted run under that schedule."""
    _, _, straight = _stepped(7, start=4, every=1, factor=0.5)
    old_opt, old_sched, _ = _stepped(3, start=5, every=1, factor=0.5)  # agrees up to epoch 3
    state = {**old_sched.state_dict(), "lr_lambdas": [saved_lambda]}
    opt = build_optimizer(torch.nn.Linear(3, 2).parameters(), "adam", lr=1.0)
    opt.load_state_dict(old_opt.state_dict())
    sched = build_scheduler(opt, start=4, every=1, factor=0.5)
    sched.load_state_dict(state)
    resumed = []
    for _ in range(4):
        resumed.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert resumed == straight[3:]
