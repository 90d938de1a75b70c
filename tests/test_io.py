"""Atomic writes: a failed write leaves the previous file and no temporary behind."""

import pytest

from parotidlib.io import atomic_path, write_text_atomic


def test_success_replaces_and_failure_keeps_the_old_content(tmp_path):
    target = tmp_path / "sub" / "out.txt"
    write_text_atomic(target, "first")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert target.read_text() == "first"
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.txt"]
    write_text_atomic(target, "second")
    assert target.read_text() == "second"
