"""The generated stage tables: in step with run/stages.py, and rewritten between markers."""

from __future__ import annotations

import dataclasses

import pytest

from parotidlib.paths import PROJECT_ROOT as REPO_ROOT
from parotidlib.run import stage_docs
from parotidlib.run.stages import STAGES


def test_documents_are_up_to_date():
    assert stage_docs.stale_documents(REPO_ROOT) == [], "run `make docs`"


def test_every_stage_and_its_keys_are_in_the_tables():
    table = stage_docs.stage_table()
    for stage in STAGES:
        assert f"| {stage.name} | `{stage.notebook.removesuffix('.ipynb')}` |" in table
        for key in stage.keys:
            assert f"`{key}`" in table
    assert "saliency" in stage_docs.overview_table()


def test_update_rewrites_between_markers_only(tmp_path, monkeypatch):
    monkeypatch.setattr(stage_docs, "DOCUMENTS", ("doc.md",))
    doc = tmp_path / "doc.md"
    doc.write_text("intro\n<!-- stages:overview begin -->\nold\n<!-- stages:overview end -->\n"
                   "outro\n")
    assert stage_docs.update(tmp_path) == ["doc.md"]
    text = doc.read_text()
    assert text.startswith("intro\n<!-- stages:overview begin -->\n| stage | notebook | does |")
    assert text.endswith("<!-- stages:overview end -->\noutro\n")
    assert "old" not in text
    assert stage_docs.update(tmp_path) == []  # now up to date


def test_a_new_stage_row_appears_in_the_table():
    extra = dataclasses.replace(STAGES[2], name="calibrate", notebook="35-calibrate.ipynb",
                                about="the probabilities calibrated")
    assert "| calibrate | `35-calibrate` | the probabilities calibrated |" in \
        stage_docs.overview_table((*STAGES, extra))


def test_unknown_table_is_named(tmp_path, monkeypatch):
    monkeypatch.setattr(stage_docs, "DOCUMENTS", ("doc.md",))
    (tmp_path / "doc.md").write_text("<!-- stages:nope begin -->\n<!-- stages:nope end -->\n")
    with pytest.raises(ValueError, match="no stage table named 'nope'"):
        stage_docs.stale_documents(tmp_path)
