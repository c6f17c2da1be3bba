"""Every registered study loads, declares what the CLI shows, and has valid presets."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox.runner import plan
from sandbox.study import Study, load, registered

REPO = Path(__file__).resolve().parents[1]
STUDIES = sorted(registered())


def test_the_six_paper_studies_are_registered():
    assert set(STUDIES) >= {
        "regret-vs-partial-return",
        "parl-vs-pebble",
        "principal-agent",
        "pluralistic-maxmin",
        "progress-coevolve",
        "w2s-deception",
    }


@pytest.mark.parametrize("name", STUDIES)
def test_study_declares_itself_and_its_presets_validate(name):
    study, path = load(name)
    assert isinstance(study, Study)
    assert study.name == name
    assert study.summary and study.paper, "`sandbox list` shows a summary and the paper"
    assert {"quick", "full"} <= set(study.presets)
    for field_name, field in study.Config.model_fields.items():
        assert field.description, (
            f"{name}: config key {field_name!r} has no description for `sandbox show`"
        )
    for scale in study.presets:
        specs = plan(study, path, scale=scale)
        assert specs, f"{name}: preset {scale!r} expands to no runs"
        assert len({s.run_id for s in specs}) == len(specs)


@pytest.mark.parametrize("name", STUDIES)
def test_study_has_a_docs_page(name):
    assert (REPO / "docs" / "studies" / f"{name}.md").exists()
