"""Prefix reuse in the embedded model: every result equals a from-scratch decode.

The reuse path (one model that keeps its live KV cache between calls, as a session's actions
run back to back) is compared with a model built with ``reuse=False`` (every call decodes
from token 0) on real sessions of both datasets with several hints each, for the ranking
methods and for chat turns; and the interrupt hook leaves the engine consistent.  The model
tests run the real SmolLM2 (marked slow; about two minutes in all).
"""

from __future__ import annotations

import pytest

from re2llm_tui import prompts
from re2llm_tui.data.release import load_release_hints, load_sessions
from re2llm_tui.llm import local
from re2llm_tui.prompts import recommend_prompt

#: hints used per session: action 0 (no hint) and two release hints
ACTIONS = (0, 1, 7)


# --------------------------------------------------------------------------- no model needed

@pytest.mark.parametrize("n,step", [(1, 64), (2, 64), (64, 64), (65, 64), (66, 64), (129, 64),
                                    (130, 64), (513, 512), (4, 3), (7, 3)])
def test_chunk_bounds_cover_the_tokens_without_a_lone_token(n, step):
    bounds = local.chunk_bounds(n, step)
    assert bounds[0][0] == 0 and bounds[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
    assert all(0 < end - start <= step for start, end in bounds)
    if n > 1:
        assert all(end - start >= 2 for start, end in bounds)


def test_common_prefix():
    import numpy as np

    live = np.array([5, 6, 7, 8], dtype=np.intc)
    assert local.common_prefix(live, [5, 6, 9]) == 2
    assert local.common_prefix(live, [5, 6]) == 2
    assert local.common_prefix(live, [5, 6, 7, 8, 9]) == 4
    assert local.common_prefix(live, [1]) == 0
    assert local.common_prefix(live[:0], [1, 2]) == 0


def test_interrupt_check_must_be_callable():
    with pytest.raises(TypeError):
        local.set_interrupt_check(42)
    local.set_interrupt_check(None)


# --------------------------------------------------------------------------- the real model

@pytest.fixture(scope="module")
def models():
    """(reusing model, from-scratch model): two instances, used one at a time."""
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")
    return local.LocalModel(), local.LocalModel(reuse=False)


@pytest.fixture(autouse=True)
def _no_interrupt_check():
    yield
    local.set_interrupt_check(None)


def _sessions(domain, data_dir, n):
    """The ``n`` shortest test sessions (keeps the test to a couple of minutes)."""
    return sorted(load_sessions(domain, "test", data_dir), key=lambda s: len(s.prompt))[:n]


def _prompts(domain, data_dir, session):
    hints = load_release_hints(domain, data_dir)
    return [recommend_prompt(session.prompt, hints[a] if a else None) for a in ACTIONS]


@pytest.mark.slow
@pytest.mark.parametrize("domain,n", [("games", 1), ("movies", 2)])
def test_sequential_rankings_with_reuse_equal_from_scratch(models, data_dir, domain, n):
    reuse, scratch = models
    for s in _sessions(domain, data_dir, n):
        for i, prompt in enumerate(_prompts(domain, data_dir, s)):
            got = reuse.rank(prompt, s.candidates, 10, "sequential")
            ref = scratch.rank(prompt, s.candidates, 10, "sequential")
            assert got.ranking == ref.ranking, (domain, s.id, ACTIONS[i])
            assert (got.text, got.prompt_tokens, got.completion_tokens) == \
                (ref.text, ref.prompt_tokens, ref.completion_tokens)
            assert ref.cached_tokens == 0
            if i:   # a hinted prompt shares all but its last ~30 tokens with the one before
                assert got.prompt_tokens - 40 < got.cached_tokens < got.prompt_tokens


@pytest.mark.slow
def test_logprob_scores_with_reuse_equal_from_scratch(models, data_dir):
    """(movies only: a games logprob call scores 50 long titles, ~12 s)"""
    reuse, scratch = models
    s = _sessions("movies", data_dir, 1)[0]
    for prompt in _prompts("movies", data_dir, s)[:2]:
        got = reuse.rank(prompt, s.candidates, 10, "logprob")
        ref = scratch.rank(prompt, s.candidates, 10, "logprob")
        assert got.ranking == ref.ranking and got.scores == ref.scores


@pytest.mark.slow
def test_chat_turns_reuse_the_conversation_and_equal_from_scratch(models, data_dir):
    """A reflection-like conversation: each turn equals a from-scratch reply (ours and
    llama-cpp-python's own create_chat_completion) and reuses the conversation so far."""
    reuse, scratch = models
    s = _sessions("movies", data_dir, 1)[0]
    convo = [{"role": "user", "content": s.prompt}]
    follow_ups = [prompts.reflection_mistakes_prompt(),
                  prompts.reflection_analysis_prompt(s.label)]
    first_prompt = None
    for turn in range(3):
        got = reuse.chat_output(convo, max_tokens=32)
        ref = scratch.chat_output(convo, max_tokens=32)
        assert (got.text, got.prompt_tokens, got.completion_tokens) == \
            (ref.text, ref.prompt_tokens, ref.completion_tokens), turn
        with scratch.lock:      # llama-cpp-python's own path, from token 0
            scratch.forget()
            lib = scratch.llama.create_chat_completion(
                messages=convo, temperature=0.0, seed=0, max_tokens=32,
                repeat_penalty=local.REPEAT_PENALTY)
            scratch.forget()
        assert got.text == lib["choices"][0]["message"]["content"], turn
        if turn:    # the previous turn's prompt is reused (its reply was generated alone)
            assert got.cached_tokens >= first_prompt - local.MIN_TAIL
        else:
            first_prompt = got.prompt_tokens
        if turn < 2:
            convo = convo + [{"role": "assistant", "content": got.text},
                             {"role": "user", "content": follow_ups[turn]}]
    # the generate method is a chat turn too: a hinted re-ask reuses the session prompt
    hint = load_release_hints("movies", data_dir)[1]
    got = reuse.rank(recommend_prompt(s.prompt, hint), s.candidates, 10, "generate")
    ref = scratch.rank(recommend_prompt(s.prompt, hint), s.candidates, 10, "generate")
    assert got.text == ref.text and got.ranking == ref.ranking


class Stop(Exception):
    pass


def _stop_after(n: int):
    """An interrupt check that raises :class:`Stop` on its ``n``-th call; counts calls."""
    calls = []

    def check():
        calls.append(1)
        if len(calls) == n:
            raise Stop

    return check, calls


@pytest.mark.slow
def test_interrupt_mid_prefill_and_mid_generation_leaves_the_engine_consistent(models,
                                                                               data_dir):
    reuse, scratch = models
    s = _sessions("movies", data_dir, 1)[0]
    prompt = _prompts("movies", data_dir, s)[1]
    ref = scratch.rank(prompt, s.candidates, 10, "sequential")
    reuse.forget()

    # stop during the prompt's prefill: exactly the chunks decoded so far are live
    check, calls = _stop_after(3)
    local.set_interrupt_check(check)
    with pytest.raises(Stop):
        reuse.rank(prompt, s.candidates, 10, "sequential")
    assert len(reuse.live_tokens()) == 2 * reuse.llama.n_batch
    local.set_interrupt_check(None)
    again = reuse.rank(prompt, s.candidates, 10, "sequential")
    assert again.ranking == ref.ranking and again.cached_tokens == 2 * reuse.llama.n_batch

    # the check runs between chunks and between generated tokens (a pause is a check
    # that blocks; here it just counts), and a stop in the middle of generation is clean
    check, calls = _stop_after(10 ** 9)
    local.set_interrupt_check(check)
    reuse.forget()
    reuse.rank(prompt, s.candidates, 10, "sequential")
    chunks = len(local.chunk_bounds(ref.prompt_tokens, reuse.llama.n_batch))
    assert len(calls) > chunks + 10
    check, _ = _stop_after(chunks + 5)
    local.set_interrupt_check(check)
    reuse.forget()
    with pytest.raises(Stop):
        reuse.rank(prompt, s.candidates, 10, "sequential")
    local.set_interrupt_check(None)
    again = reuse.rank(prompt, s.candidates, 10, "sequential")
    assert again.ranking == ref.ranking and again.cached_tokens > 0

    # stop a chat turn between generated tokens, then chat again
    convo = [{"role": "user", "content": "Name three colours."}]
    ref_chat = scratch.chat_output(convo, max_tokens=24)
    check, calls = _stop_after(4)
    local.set_interrupt_check(check)
    with pytest.raises(Stop):
        reuse.chat_output(convo, max_tokens=24)
    local.set_interrupt_check(None)
    assert reuse.chat_output(convo, max_tokens=24).text == ref_chat.text


@pytest.mark.slow
def test_a_failed_decode_records_only_the_chunks_decoded(models, data_dir, monkeypatch):
    reuse, scratch = models
    s = _sessions("games", data_dir, 1)[0]
    prompt = _prompts("games", data_dir, s)[0]
    ref = scratch.rank(prompt, s.candidates, 10, "sequential")
    reuse.forget()
    ctx = reuse.llama._ctx
    real, seen = ctx.decode, []

    def failing(batch):
        seen.append(1)
        if len(seen) == 4:
            raise RuntimeError("llama_decode returned 1")
        return real(batch)

    monkeypatch.setattr(ctx, "decode", failing)
    with pytest.raises(RuntimeError):
        reuse.rank(prompt, s.candidates, 10, "sequential")
    monkeypatch.setattr(ctx, "decode", real)
    assert len(reuse.live_tokens()) == 3 * reuse.llama.n_batch
    again = reuse.rank(prompt, s.candidates, 10, "sequential")
    assert again.ranking == ref.ranking and again.cached_tokens == 3 * reuse.llama.n_batch
