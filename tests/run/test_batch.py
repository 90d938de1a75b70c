"""Batches of runs (run/batch.py): grids, member names, executor settings."""

import pytest

from parotidlib import params as P
from parotidlib.config import BatchConfig, ParamsError
from parotidlib.run.batch import _submitit_parameters, expand_grid, member_name


def test_member_names():
    assert member_name({"channels": ["t1", "t2"], "seed": 0}) == "t1+t2__seed0"
    assert member_name({"fold": 2, "seed": 1}) == "fold2__seed1"
    assert member_name({"lr": 0.001, "model_widths": [8, 16]}) == "lr=0.001__model_widths=8+16"
    assert member_name({"optimizer": "a/b c"}) == "optimizer=a_b_c"
    assert member_name({}) == "base"


def test_expand_grid_is_the_cartesian_product_in_key_order():
    members = expand_grid({"fold": [0, 1, 2], "seed": [0, 1]})
    assert [m.name for m in members] == ["fold0__seed0", "fold0__seed1", "fold1__seed0",
                                         "fold1__seed1", "fold2__seed0", "fold2__seed1"]
    assert members[3].overrides == {"fold": 1, "seed": 1}
    with pytest.raises(ValueError, match="same folder name"):
        expand_grid({"optimizer": ["a/b", "a_b"]})


def test_batch_params_are_validated():
    resolved = P.resolve({"grid": {"lr": [1e-3, 3e-4]}, "executor": "slurm",
                          "cluster": {"partition": "gpu", "time_min": 90, "mem_gb": 32}})
    assert resolved["grid"] == {"lr": [1e-3, 3e-4]}
    for bad, match in (({"grid": {"sed": [0]}}, "not a params key"),
                       ({"grid": {"seed": []}}, "non-empty list"),
                       ({"grid": {"jobs": [1, 2]}}, "not a params key"),
                       ({"executor": "pbs"}, "executor"),
                       ({"cluster": {"partition": "gpu", "nodes": 2}}, "unknown cluster"),
                       ({"cluster": {"time_min": 0}}, "cluster.time_min"),
                       ({"cluster": {"mem_gb": -1}}, "cluster.mem_gb")):
        with pytest.raises(ParamsError, match=match):
            P.resolve(bad)


def test_cluster_section_maps_to_submitit_parameters():
    batch = BatchConfig(executor="slurm", cluster={
        "partition": "gpu", "time_min": 120, "gpus_per_member": 1, "cpus_per_member": 8,
        "mem_gb": 32, "account": "radiology", "array_parallelism": 10,
        "setup": ["module load cuda"]})
    out = _submitit_parameters(batch)
    assert out == {"timeout_min": 120, "gpus_per_node": 1, "cpus_per_task": 8, "nodes": 1,
                   "tasks_per_node": 1, "mem_gb": 32.0, "slurm_partition": "gpu",
                   "slurm_account": "radiology", "slurm_array_parallelism": 10,
                   "slurm_setup": ["module load cuda"]}



def test_cluster_section_gives_the_sbatch_script(monkeypatch, tmp_path):
    """The sbatch script submitit would submit (no cluster here: srun is faked present)."""
    import submitit
    from submitit.slurm.slurm import SlurmExecutor

    monkeypatch.setattr(SlurmExecutor, "affinity", classmethod(lambda cls: 2))
    batch = BatchConfig(executor="slurm", cluster={
        "partition": "gpu", "time_min": 120, "gpus_per_member": 1, "cpus_per_member": 8,
        "mem_gb": 32, "account": "radiology", "setup": ["module load cuda"]})
    executor = submitit.AutoExecutor(folder=tmp_path, cluster="slurm")
    executor.update_parameters(**_submitit_parameters(batch))
    script = executor._executor._make_submission_file_text("python -m x", "uid")
    for line in ("#SBATCH --partition=gpu", "#SBATCH --time=120", "#SBATCH --gpus-per-node=1",
                 "#SBATCH --cpus-per-task=8", "#SBATCH --mem=32GB",
                 "#SBATCH --account=radiology", "module load cuda"):
        assert line in script, line
