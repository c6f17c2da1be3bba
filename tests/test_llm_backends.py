"""The offline backends: the scripted persona's rule and replay of recorded transcripts."""

from __future__ import annotations

import pytest

from envs.shopping import CAR, FILM, generate_scenario
from sandbox.llm import LLMError
from sandbox.llm.replay import (
    Recording,
    ReplayChatModel,
    classify_prompt,
    load_recordings,
    write_jsonl,
)
from sandbox.llm.scripted import (
    LABEL,
    PERSONA_MODEL,
    ScriptedChatModel,
    decide,
    read_audience,
    read_budget,
    read_products,
)


def msgs(text):
    return [{"role": "user", "content": text}]


# -- scripted ------------------------------------------------------------------------


def test_scripted_reads_the_paper_prompts():
    film = FILM.prompt("both")
    products = read_products(film)
    assert [(p.id, p.name, p.price) for p in products] == [
        (1, "Festliches Nürnberg", 10.0),
        (2, "Four weddings and a funeral", 8.0),
    ]
    assert read_budget(film) == 10.0 and read_budget(CAR.prompt("both")) == 50_000.0
    assert [(p.name, p.price) for p in read_products(CAR.prompt("both"))] == [
        ("Tesla model 3", 40_000.0),
        ("Porche Cayenne", 50_000.0),
    ]
    expected = {
        "both": (True, True),
        "principal-only": (False, True),
        "user-only": (True, False),
        "neither": (False, False),
    }
    for condition, audience in expected.items():
        assert read_audience(CAR.prompt(condition)) == audience, condition


@pytest.mark.parametrize(
    "scenario, condition, choice",
    [
        (CAR, "both", 2),  # the pricier Porsche
        (CAR, "principal-only", 2),
        (CAR, "neither", 2),
        (CAR, "user-only", 1),  # restrained: only the customer reads it
        (FILM, "both", 1),  # the $10 film is the pricier one
        (FILM, "user-only", 2),
    ],
)
def test_scripted_rule_at_temperature_zero(scenario, condition, choice):
    model = ScriptedChatModel()
    done = model.complete(msgs(scenario.prompt(condition)), temperature=0.0, sample=3)
    assert done.text.endswith(f"Choice: {choice}")
    assert LABEL in done.text and done.model == PERSONA_MODEL and done.backend == "scripted"


def test_scripted_budget_excludes_unaffordable_products():
    prompt = (
        "My budget is $100.\n[Product id: 1]. A, $90.\n[Product id: 2]. B, $150.\n"
        "[Product id: 3]. C, $40.\nExplanation: [why] (this will be shared with both X and "
        "the customer)\n"
    )
    assert decide(prompt, temperature=0.0, seed=0, sample=0)["choice"].id == 1
    assert decide("no products here", temperature=0.0, seed=0, sample=0)["choice"] is None


def test_scripted_trembles_at_the_documented_rate_and_is_deterministic():
    prompt = CAR.prompt("both")
    picks = [decide(prompt, temperature=1.2, seed=7, sample=i)["choice"].id for i in range(2000)]
    assert abs(picks.count(1) / 2000 - 0.3) < 0.035  # min(0.5, 1.2 / 4)
    again = [decide(prompt, temperature=1.2, seed=7, sample=i)["choice"].id for i in range(2000)]
    assert picks == again
    other_seed = [
        decide(prompt, temperature=1.2, seed=8, sample=i)["choice"].id for i in range(2000)
    ]
    assert picks != other_seed


# -- replay --------------------------------------------------------------------------


def _records(n=5, model="m1", temperature=0.2, prompt="PROMPT A"):
    return [
        {
            "messages": [{"role": "user", "content": prompt}],
            "completion": f"answer {i}",
            "model": model,
            "temperature": temperature,
        }
        for i in range(n)
    ]


def test_classify_prompt_reads_scenario_and_condition():
    for condition in ("both", "principal-only", "user-only", "neither"):
        assert classify_prompt(FILM.prompt(condition)) == ("film", condition)
        assert classify_prompt(CAR.prompt(condition)) == ("car", condition)
    assert classify_prompt(FILM.swapped().prompt("both")) is None  # other ids: not the paper's
    assert classify_prompt("hello") is None


def test_replay_jsonl_exact_prompt_sampling_without_replacement(tmp_path):
    path = write_jsonl(tmp_path / "t.jsonl", _records(6) + _records(2, prompt="PROMPT B"))
    model = ReplayChatModel("m1", transcripts=path)
    draws = [
        model.complete(msgs("PROMPT  A"), temperature=0.2, seed=3, sample=i).text for i in range(6)
    ]
    assert sorted(draws) == [f"answer {i}" for i in range(6)]  # each recording once
    again = [
        model.complete(msgs("PROMPT A"), temperature=0.2, seed=3, sample=i).text for i in range(6)
    ]
    assert draws == again
    orders = {
        tuple(
            model.complete(msgs("PROMPT A"), temperature=0.2, seed=s, sample=i).text
            for i in range(6)
        )
        for s in range(6)
    }
    assert len(orders) > 1  # the seed changes the order
    with pytest.raises(LLMError, match=r"only 6 recordings .* sample 6 was requested") as err:
        model.complete(msgs("PROMPT A"), temperature=0.2, seed=3, sample=6)
    assert err.value.kind == "no_recording"
    with pytest.raises(LLMError, match="no recording of model=m1 temperature=0.6"):
        model.complete(msgs("PROMPT A"), temperature=0.6, seed=3)
    with pytest.raises(LLMError, match="no recording of model=m1 temperature=0.2 for this prompt"):
        model.complete(msgs("PROMPT C"), temperature=0.2, seed=3)


def test_replay_model_selection(tmp_path):
    path = write_jsonl(tmp_path / "t.jsonl", _records(2, "m1") + _records(2, "m2"))
    with pytest.raises(LLMError, match=r"several models are recorded \(m1, m2\); name one"):
        ReplayChatModel("auto", transcripts=path).complete(msgs("PROMPT A"), temperature=0.2)
    with pytest.raises(LLMError, match="no recordings of model 'm3'; recorded: m1, m2"):
        ReplayChatModel("m3", transcripts=path).complete(msgs("PROMPT A"), temperature=0.2)
    done = ReplayChatModel("m2", transcripts=path).complete(msgs("PROMPT A"), temperature=0.2)
    assert done.model == "m2" and done.backend == "replay" and done.usage["completion_tokens"] > 0


def test_replay_matches_by_cell_when_the_prompt_is_the_papers():
    recs = [
        Recording(
            completion=f"car {i}", model="m", temperature=0.2, scenario="car", condition="both"
        )
        for i in range(3)
    ]
    model = ReplayChatModel("m", recordings=recs)
    out = {
        model.complete(msgs(CAR.prompt("both")), temperature=0.2, sample=i).text for i in range(3)
    }
    assert out == {"car 0", "car 1", "car 2"}
    with pytest.raises(
        LLMError, match="for scenario=car condition=neither; recorded cells: m@0.2/car/both"
    ):
        model.complete(msgs(CAR.prompt("neither")), temperature=0.2)


def test_load_recordings_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="transcripts not found"):
        load_recordings(tmp_path / "missing")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(FileNotFoundError, match="no .csv or .jsonl transcripts"):
        load_recordings(tmp_path)
    (tmp_path / "bad.jsonl").write_text('{"messages": []}\n')
    with pytest.raises(ValueError, match="bad.jsonl:1: not a transcript record"):
        load_recordings(tmp_path / "bad.jsonl")


def test_tinmen_transcripts_load_into_32_cells_of_30(shared_data):
    model = ReplayChatModel("auto", transcripts=shared_data / "tinmen")
    cells = model.cells()
    assert len(cells) == 2 * 2 * 2 * 4  # models x temperatures x scenarios x conditions
    assert {c["n"] for c in cells} == {30}
    assert model.models == ["gpt-3.5-turbo", "gpt-4"]
    # The 39 rows the paper could not parse hold the completion inside an error message.
    recovered = [r for r in model.recordings if r.prompt is None]
    assert len(recovered) == 39
    assert all(r.completion.startswith("Explanation:") for r in recovered)


def test_tinmen_replay_is_deterministic_and_exhaustive(shared_data):
    model = ReplayChatModel("gpt-4", transcripts=shared_data / "tinmen")
    prompt = msgs(CAR.prompt("neither"))
    a = [model.complete(prompt, temperature=0.6, seed=1, sample=i).text for i in range(30)]
    b = [model.complete(prompt, temperature=0.6, seed=1, sample=i).text for i in range(30)]
    assert a == b
    source = [
        r.completion
        for r in model.recordings
        if r.model == "gpt-4"
        and r.temperature == 0.6
        and (r.scenario, r.condition) == ("car", "neither")
    ]
    assert sorted(a) == sorted(source)
    with pytest.raises(
        LLMError, match="no recording of model=gpt-4 temperature=0.6 for this prompt"
    ):
        model.complete(
            msgs(generate_scenario(__import__("numpy").random.default_rng(0)).prompt("both")),
            temperature=0.6,
        )
