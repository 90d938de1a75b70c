"""The study read back from a run's records (study.py: Study.from_config)."""

from parotidlib.study import DEFAULT_STUDY, Study


def test_a_recorded_study_and_an_older_record_without_one():
    assert Study.from_config({}) == DEFAULT_STUDY
    assert Study.from_config({"series": ["t1", "adc"], "labels_from": "t1"}) == Study(
        ("t1", "adc"), "t1")
