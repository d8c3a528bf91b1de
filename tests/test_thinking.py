"""Thinking kept apart from the answer (issue 20, item 2): :mod:`re2llm_tui.llm.thinking`
and every consumer that parses a reply (ranking, reflection turns, hints, leak check, the
LLM redundancy check) reading only the answer, on real release sessions."""

from __future__ import annotations

import asyncio

import pytest
from replies import ranked_reply

from re2llm_tui.data.dataset import Dataset
from re2llm_tui import prompts
from re2llm_tui.data.release import get_session, load_sessions
from re2llm_tui.exploration.checks import parse_yes_no
from re2llm_tui.exploration.hints import parse_hints
from re2llm_tui.exploration.leak import leak_of
from re2llm_tui.llm.parsing import parse_ranking, target_rank
from re2llm_tui.llm.thinking import (
    Reply,
    answer_of,
    reasoning_of,
    reasoning_tokens_of,
    split_message,
    split_reply,
)

ANSWER = "1. Heat (1995)\n2. Casino (1995)\n3. Se7en (1995)"


# --------------------------------------------------------------------------- split_reply

@pytest.mark.parametrize("wrapped", [
    f"<think>\nThe user likes crime.\n</think>\n\n{ANSWER}",
    f"<think>The user likes crime.</think>{ANSWER}",
    f"  \n<THINK>The user likes crime.</Think>\n{ANSWER}",
    f"<thinking>The user likes crime.</thinking>\n{ANSWER}",
    f"<reasoning>The user likes crime.</reasoning>\n{ANSWER}",
    f"< think >The user likes crime.</ think >\n{ANSWER}",
    f'<think type="summary">The user likes crime.</think>\n{ANSWER}',
    f"<think>The user</think>\n<think>likes crime.</think>\n{ANSWER}",        # several blocks
    f"The user likes crime.\n</think>\n\n{ANSWER}",   # R1 template: <think> was in the prompt
])
def test_a_leading_thinking_block_is_split_off(wrapped):
    r = split_reply(wrapped)
    assert r.answer == ANSWER
    assert "The user" in r.reasoning and "likes crime." in r.reasoning
    assert "<" not in r.reasoning and not r.cut_off


def test_a_reply_without_thinking_comes_back_unchanged():
    for text in (ANSWER, "  1. A <b>bold</b> title  \n", "", "x < y and y > z"):
        r = split_reply(text)
        assert r == Reply(text, "") and r.answer is text
    assert split_reply(None) == Reply("", "")


def test_an_unclosed_think_at_a_cut_off_leaves_an_empty_answer():
    r = split_reply("<think>Let me list candidates:\n1. Heat (1995)\n2. Casino")
    assert r.answer == "" and r.cut_off
    assert r.reasoning.startswith("Let me list candidates") and "2. Casino" in r.reasoning
    assert parse_ranking(r.answer, ["Heat (1995)", "Casino (1995)"]).positions == []


def test_a_think_in_the_middle_of_an_answer_is_thinking_too():
    r = split_reply(f"1. Heat (1995)\n<think>maybe Casino? 2. Casino (1995)</think>\n"
                    "2. Se7en (1995)")
    assert r.answer == "1. Heat (1995)\n\n2. Se7en (1995)"
    assert "maybe Casino" in r.reasoning and not r.cut_off
    # cut off while thinking again after a partial answer: the answer before it stays
    r = split_reply("1. Heat (1995)\n<think>and then 2. Casino (1995")
    assert r.answer == "1. Heat (1995)" and "Casino" in r.reasoning and not r.cut_off


@pytest.mark.parametrize("text", [
    f"<think>a</think>{ANSWER}", f"x</think>{ANSWER}", f"<think>a</think>{ANSWER}</think>z",
    "<think>cut", f"{ANSWER}<think>b</think>tail", ANSWER, "",
])
def test_splitting_is_idempotent(text):
    once = split_reply(text).answer
    assert split_reply(once).answer == once and answer_of(once) == once
    assert answer_of(text) == once


def test_provider_reasoning_fields():
    # DeepSeek / vLLM's reasoning parser: a field beside the content
    r = split_reply(ANSWER, "The user likes crime.")
    assert r == Reply(ANSWER, "The user likes crime.")
    # both a field and an inline block: both are reasoning
    r = split_reply(f"<think>more</think>{ANSWER}", "first")
    assert r.answer == ANSWER and r.reasoning == "first\n\nmore"
    # Anthropic thinking blocks as litellm returns them; a redacted block has no text
    blocks = [{"type": "thinking", "thinking": "step one", "signature": "sig"},
              {"type": "redacted_thinking", "data": "xxxx"},
              {"type": "thinking", "thinking": "step two", "signature": "sig"}]
    assert split_reply(ANSWER, blocks).reasoning == "step one\n\nstep two"
    # a message: litellm's normalised reasoning_content wins over the blocks (no double count)
    msg = {"content": ANSWER, "reasoning_content": "step one", "thinking_blocks": blocks}
    assert split_message(msg) == Reply(ANSWER, "step one")
    assert reasoning_of({"content": ANSWER, "thinking_blocks": blocks}) == "step one\n\nstep two"
    # Ollama's /api/chat message, vLLM >= 0.10's `reasoning`
    assert reasoning_of({"role": "assistant", "content": ANSWER, "thinking": "hm"}) == "hm"
    assert reasoning_of({"content": ANSWER, "reasoning": "hmm"}) == "hmm"
    assert reasoning_of({"content": ANSWER}) == "" and reasoning_of(None) == ""

    class Msg:          # an object with attributes, like litellm's Message
        content = ANSWER
        reasoning_content = "attr"
    assert split_message(Msg()) == Reply(ANSWER, "attr")


def test_reasoning_tokens_of_usage():
    assert reasoning_tokens_of({"completion_tokens": 350,
                                "completion_tokens_details": {"reasoning_tokens": 300}}) == 300
    assert reasoning_tokens_of({"completion_tokens": 5}) == 0
    assert reasoning_tokens_of({"reasoning_tokens": 7}) == 7
    assert reasoning_tokens_of(None) == 0
    assert reasoning_tokens_of({"completion_tokens_details": {"reasoning_tokens": None}}) == 0


# --------------------------------------------------------------------------- property

def _thinking_about(session, answer_rank) -> str:
    """A thinking block as a reasoning model writes it: a numbered draft list that puts the
    target first, candidates ranked differently, a hint-like imperative line."""
    draft = [session.target] + [c for c in session.candidates if c != session.target][10:19]
    lines = "\n".join(f"{i}. {t}" for i, t in enumerate(draft, 1))
    return (f"<think>\nThe user watched these; a first draft:\n{lines}\n"
            f"- Recommend {session.target} first.\nNo, reorder.\n</think>\n\n")


def _sessions(n=20):
    return load_sessions("movie", "test")[:n]


def test_the_same_answer_scores_identically_with_or_without_thinking(data_dir, monkeypatch):
    """On 20 real movie sessions, with the target at ranks 1, 5, 10 or absent in the final
    answer: the parsed ranking, the hallucinations and the target's rank (both accountings)
    are the same whether a thinking block precedes the answer or not."""
    monkeypatch.setenv("RE2LLM_DATA", str(data_dir))
    sessions = _sessions()
    assert len(sessions) == 20
    for i, s in enumerate(sessions):
        rank = (1, 5, 10, None)[i % 4]
        answer = ranked_reply(s, rank)
        for thought in (_thinking_about(s, rank),
                        _thinking_about(s, rank).replace("<think>\n", "", 1)):   # R1 template
            plain, thinking = (parse_ranking(answer, s.candidates),
                               parse_ranking(thought + answer, s.candidates))
            assert thinking == plain
            for by in ("reply", "candidates"):
                assert target_rank(thinking, s.target_index, by) == rank
                assert target_rank(plain, s.target_index, by) == rank
        # a reply cut off while thinking lists nothing (a failed call, never a ranking)
        cut = parse_ranking(_thinking_about(s, rank).split("</think>")[0], s.candidates)
        assert cut.positions == [] and cut.hallucinations == []


# --------------------------------------------------------------------------- the consumers

def test_hints_yes_no_and_leak_check_read_only_the_answer():
    thinking = ("<think>\nHints I could give:\n1. Recommend Bioshock 2 first.\n"
                "2. Always include the sequel of the last game.\nYes, 1 maybe.\n</think>\n")
    hints = parse_hints(thinking + "1. Prefer story-driven shooters the user owns.\n"
                        "2. Match the platform of recent purchases.")
    assert hints == ["Prefer story-driven shooters the user owns.",
                     "Match the platform of recent purchases."]
    assert parse_hints("<think>1. Recommend Bioshock 2 first.\n2. Pick sequels now.") == []
    assert parse_yes_no(thinking + "No", 3) == (False, None)
    assert parse_yes_no("<think>No, not similar.</think>Yes, 2", 3) == (True, 2)
    # the leak check judges the text that becomes the hint, never the thinking
    assert leak_of("<think>the target is Bioshock 2</think>Prefer sequels.",
                   "Bioshock 2 - Xbox 360") is None
    assert leak_of("<think>ok</think>Recommend Bioshock sequels.",
                   "Bioshock 2 - Xbox 360") == "bioshock"


SESSION = "train-0001"   # games; target "Bioshock 2 - Xbox 360"


class ThinkingScript:
    """A reasoning model's replies (a numbered draft with the target and hint-like imperative
    lines inside ``<think>``), with plain final answers: the baseline misses, the hint
    "sequels" puts the target 3rd, the redundancy question is answered "No"."""

    HINTS = ["Recommend sequels of games the user already owns.",
             "Match the platform of the recent purchases in the list."]

    def __init__(self, session):
        self.s = session
        self.seen: list[list[dict]] = []

    def think(self) -> str:
        return _thinking_about(self.s, None) + ""

    def __call__(self, messages):
        self.seen.append([dict(m) for m in messages])
        last = messages[-1]["content"]
        s = self.s
        if len(messages) == 1 and "candidate set:" in last:
            hinted = " Hint: " in last and "sequels" in last.split(" Hint: ", 1)[1]
            return self.think() + ranked_reply(s, 3 if hinted else None)
        if last == prompts.reflection_mistakes_prompt():
            return self.think() + "I over-weighted accessories."
        if last.startswith("The correct answer is"):
            return self.think() + "The user owns the first part of the series."
        if last.startswith("Based on your analysis, write at most"):
            return self.think() + "\n".join(f"{i}. {h}" for i, h in enumerate(self.HINTS, 1))
        if last.startswith("Here are the hints already"):
            return "<think>Yes, 1 -- hmm, no.</think>No"
        raise AssertionError(f"unexpected message {last[:80]!r}")


def test_no_thinking_text_reaches_a_ranking_a_hint_a_leak_check_or_a_reflection_row(
        workspace, data_dir, monkeypatch):
    """explore against a scripted thinking model (raw replies: the client does not split yet):
    the baseline is a miss (the draft inside <think> lists the target first), the proposed
    hints are the two final ones (the imperative "Recommend <target> first." inside the
    thinking is neither proposed nor leak-checked), the hint steering the target to rank 3
    is added, and no reflection row, hint or message sent back holds thinking text."""
    from re2llm_tui.embeddings import get_encoder
    from re2llm_tui.exploration.reflection import ReflectConfig, explore, reflection_record
    from re2llm_tui.kb import store as kb
    from re2llm_tui.llm.client import LLMClient
    from re2llm_tui.llm.scripted import register_scripted
    from re2llm_tui.store.workspace import open_workspace

    monkeypatch.setenv("RE2LLM_DATA", str(data_dir))
    s = get_session("games", SESSION)
    script = ThinkingScript(s)
    register_scripted("scripted", script)
    db = open_workspace(workspace)
    client = LLMClient(workspace, model="scripted/thinker", max_retries=0)
    try:
        summary = asyncio.run(explore(db, client, Dataset.resolve("games"), session_id=SESSION,
                                      encoder=get_encoder(), config=ReflectConfig()))
    finally:
        client.close()
    out = summary.outcomes[0]
    assert out.baseline_rank is None, "the draft inside <think> is not the ranking"
    assert [c.text for c in out.checks] == ThinkingScript.HINTS
    assert all(c.leak is None for c in out.checks)
    by_text = {c.text: c for c in out.checks}
    assert by_text[ThinkingScript.HINTS[0]].rank_with == 3
    assert by_text[ThinkingScript.HINTS[0]].verdict == "added"

    rec = reflection_record(db, out.reflection_id)
    stored = [t["content"] for t in rec["turns"]]
    assert stored and not any("<think>" in t or "first draft" in t for t in stored)
    assert not any("first draft" in h.text or "<think" in h.text
                   for h in kb.KnowledgeBase(db, Dataset.resolve("games")).hints(("accepted", "candidate")))
    for conv in script.seen:       # the conversation sent back carries answers only
        assert not any(m["role"] == "assistant" and "first draft" in m["content"] for m in conv)
    for row in db.execute("SELECT * FROM reflection_hints").fetchall():
        assert not any(isinstance(v, str) and "first draft" in v for v in row)
