"""What a model accepts, decided before the first call (issue 20, item 1):
:mod:`re2llm_tui.llm.capabilities` and the per-model declarations of
:mod:`re2llm_tui.store.model_profiles`."""

from __future__ import annotations

import pytest

from re2llm_tui.errors import UserError
from re2llm_tui.llm.capabilities import (
    EFFORTS,
    REASONING_ALLOWANCE,
    Declared,
    check_effort,
    decoding_profile,
)
from re2llm_tui.store.model_profiles import (
    declared_models,
    load_declared,
    resolve_declared,
    save_declared,
)
from re2llm_tui.store.workspace import open_workspace, set_meta


def test_reasoning_effort_is_validated():
    assert [check_effort(e) for e in EFFORTS] == list(EFFORTS)
    assert check_effort(None) is None and check_effort(" High ") == "high"
    for bad in ("xhigh", "max", "medium-ish", ""):
        with pytest.raises(UserError, match="unknown --reasoning-effort"):
            check_effort(bad)


@pytest.mark.parametrize("model", ["gpt-5-mini", "openai/gpt-5-mini", "o4-mini"])
def test_openai_reasoning_models_get_no_temperature_and_max_completion_tokens(model):
    d = decoding_profile(model)
    assert d.is_reasoning and d.known and d.source == "litellm"
    assert d.temperature is None and d.sampled and "temperature" in d.note
    assert d.limit_param == "max_completion_tokens" and d.supports_effort
    p = d.params(512, temperature=0.0, seed=0)
    assert "temperature" not in p and "max_tokens" not in p
    assert p["max_completion_tokens"] == 512 + REASONING_ALLOWANCE[None]
    low = decoding_profile(model, "low")
    assert low.params(512)["reasoning_effort"] == "low"
    assert low.output_limit(512) == 512 + REASONING_ALLOWANCE["low"]
    assert decoding_profile(model, "high").output_limit(512) > low.output_limit(512)


def test_efforts_a_model_refuses_are_refused_before_any_call():
    with pytest.raises(UserError, match="none is not accepted for gpt-5-mini"):
        decoding_profile("gpt-5-mini", "none")
    with pytest.raises(UserError, match="o-series"):
        decoding_profile("o4-mini", "minimal")
    assert decoding_profile("gpt-5-mini", "minimal").effort == "minimal"
    with pytest.raises(UserError, match="gpt-4o-mini"):
        decoding_profile("gpt-4o-mini", "low")


def test_a_chat_model_decodes_greedily_as_before():
    d = decoding_profile("gpt-4o-mini")
    assert not d.is_reasoning and d.temperature == 0.0 and not d.sampled
    assert d.params(512, temperature=0.0, seed=0) == {"temperature": 0.0, "seed": 0,
                                                      "max_tokens": 512}


def test_claude_thinks_only_with_an_effort_and_then_takes_no_temperature():
    plain = decoding_profile("claude-sonnet-4-5")
    assert not plain.is_reasoning and plain.temperature == 0.0 and not plain.sampled
    assert not plain.seed, "Anthropic refuses seed: litellm raises before sending"
    assert "seed" not in plain.params(512)
    low = decoding_profile("anthropic/claude-sonnet-4-5", "low")
    assert low.is_reasoning and low.temperature is None and low.sampled
    # litellm maps the effort to a thinking budget; max_tokens must exceed it
    assert low.thinking_budget == 1024 and low.output_limit(512) == 1024 + 512
    high = decoding_profile("claude-sonnet-4-5", "high")
    assert high.thinking_budget > low.thinking_budget
    assert high.output_limit(512) > high.thinking_budget
    assert not decoding_profile("claude-sonnet-4-5", "none").is_reasoning


def test_gemini_thinks_by_default_and_keeps_its_temperature():
    d = decoding_profile("gemini/gemini-2.5-flash")
    assert d.is_reasoning and d.temperature == 0.0 and d.limit_param == "max_tokens"
    assert d.output_limit(512) == 512 + REASONING_ALLOWANCE[None]
    low = decoding_profile("gemini/gemini-2.5-flash", "low")
    assert low.thinking_budget == 1024 and low.output_limit(512) == 1536
    assert not decoding_profile("gemini-2.5-flash", "none").is_reasoning


def test_deepseek_reasoner_is_sampled_whatever_the_temperature():
    for model in ("deepseek/deepseek-reasoner", "deepseek-reasoner"):
        d = decoding_profile(model)
        assert d.is_reasoning and d.sampled and d.temperature is None
        assert d.provider == "deepseek"


def test_an_unknown_served_model_is_what_the_user_declares():
    d = decoding_profile("hosted_vllm/qwen3-8b")
    assert not d.known and not d.is_reasoning and d.temperature == 0.0
    assert d.source == "default" and d.output_limit(512) == 512
    d = decoding_profile("hosted_vllm/qwen3-8b", None, Declared(reasoning=True))
    assert d.is_reasoning and d.source == "declared" and d.temperature == 0.0
    assert d.output_limit(512) == 512 + REASONING_ALLOWANCE[None]
    d = decoding_profile("hosted_vllm/qwen3-8b", "low",
                         Declared(reasoning=True, no_temperature=True))
    assert d.temperature is None and d.sampled and d.params(512)["reasoning_effort"] == "low"
    # OpenAI-compatible servers take max_completion_tokens (OpenAI refuses max_tokens)
    assert d.params(512)["max_completion_tokens"] == 512 + REASONING_ALLOWANCE["low"]
    # a declaration overrides litellm where given
    assert decoding_profile("gpt-4o-mini", None, Declared(no_temperature=True)).sampled


def test_the_demo_model_takes_no_effort():
    assert not decoding_profile("local/smollm2-135m").is_reasoning
    with pytest.raises(UserError, match="does not reason"):
        decoding_profile("local/smollm2-135m", "low")


def test_declarations_are_remembered_per_model_in_the_workspace(workspace):
    db = open_workspace(workspace)
    model = "hosted_vllm/qwen3-8b"
    assert load_declared(db, model) == {}
    assert resolve_declared(db, model) == {}            # nothing given: nothing stored
    assert declared_models(db) == {}
    assert resolve_declared(db, model, reasoning=True) == {"reasoning": True}
    # a later command without the flag gets it back, from another connection too
    db2 = open_workspace(workspace)
    assert resolve_declared(db2, model) == {"reasoning": True}
    assert resolve_declared(db2, model, no_temperature=True) == {
        "reasoning": True, "no_temperature": True}
    assert resolve_declared(db, model, reasoning=False) == {
        "reasoning": False, "no_temperature": True}
    assert load_declared(db, "hosted_vllm/other") == {}
    assert Declared.of(load_declared(db, model)) == Declared(False, True)
    assert list(declared_models(db)) == [model]
    save_declared(db, model, {})
    assert load_declared(db, model) == {} and declared_models(db) == {}
    # a damaged value reads as nothing declared, never an error
    set_meta(db, "model_profile:" + model, "{not json")
    db.conn.commit()
    assert load_declared(db, model) == {} and Declared.of(None).empty
