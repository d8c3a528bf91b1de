"""Reflective Exploration on real sessions with a scripted LLM (litellm custom provider).

The script answers like a chat model would: a numbered top-10 list for a recommendation
prompt (with the target only when a hint steers it there), free text for the reflection
turns, a numbered list of hints for turn 4 and "Yes, n"/"No" for the redundancy question.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from replies import ranked_reply

from re2llm_tui.data.dataset import Dataset
from re2llm_tui import prompts
from re2llm_tui.data.release import get_session, load_release_hints, load_sessions
from re2llm_tui.exploration.reflection import (
    ReflectConfig,
    explore,
    leak_of,
    parse_hints,
    reflection_record,
    reflections_of,
)
from re2llm_tui.kb import store as kb
from re2llm_tui.store.runs import add_run_item, create_run
from re2llm_tui.store.workspace import open_workspace

MODEL = "scripted/reflector"


class Script:
    """Replies of a plausible LLM for one or more sessions.

    ``hints``: the turn-4 list; ``steer``: hint text fragment -> rank the target gets when
    that hint is appended (others leave it out); ``similar``: fragments the LLM judges
    redundant ("Yes, 1"); ``baseline_rank``: where the unhinted list has the target (None: absent).
    """

    def __init__(self, sessions, hints, steer=None, similar=(), baseline_rank=None, fail_on=None):
        self.by_prompt = {s.prompt: s for s in sessions}
        self.hints = hints
        self.steer = steer or {}
        self.similar = similar
        self.baseline_rank = baseline_rank
        self.fail_on = fail_on
        self.seen: list[list[dict]] = []

    def _session(self, text):
        for prompt, s in self.by_prompt.items():
            if text.startswith(prompt.rstrip()):
                return s
        raise AssertionError(f"unknown prompt {text[:80]!r}")

    def __call__(self, messages):
        self.seen.append([dict(m) for m in messages])
        last = messages[-1]["content"]
        if self.fail_on and self.fail_on == last:
            raise ValueError("scripted failure")
        if len(messages) == 1 and "candidate set:" in last:
            s = self._session(last)
            hint = last.split(" Hint: ", 1)[1] if " Hint: " in last else None
            if hint is None:
                return ranked_reply(s, self.baseline_rank)
            for frag, rank in self.steer.items():
                if frag in hint:
                    return ranked_reply(s, rank)
            return ranked_reply(s, None)
        if last == prompts.reflection_mistakes_prompt():
            return ("I may have over-weighted the accessories in the history and ignored the "
                    "recent games; I also favoured popular titles over the user's niche taste.")
        if last.startswith("The correct answer is"):
            return ("1. Preference: the user buys story-driven games.\n2. Platform: the same "
                    "console as the recent purchases.\n3. Series: the user owns earlier parts.")
        if last.startswith("Based on your analysis, write at most"):
            return "Here are the hints:\n" + "\n".join(
                f"{i}. {h}" for i, h in enumerate(self.hints, 1))
        if last.startswith("Here are the hints already"):
            new = last.split('New hint: "', 1)[1]
            return "Yes, 1" if any(f in new for f in self.similar) else "No"
        raise AssertionError(f"unexpected message {last[:80]!r}")


@pytest.fixture
def env(workspace, data_dir, monkeypatch):
    """(db, make_client(script, **kw)) on a fresh workspace with the real release data."""
    from re2llm_tui.llm.client import LLMClient
    from re2llm_tui.llm.scripted import register_scripted

    monkeypatch.setenv("RE2LLM_DATA", str(data_dir))
    db = open_workspace(workspace)
    clients = []

    def make_client(script, **kw):
        register_scripted("scripted", script)
        client = LLMClient(workspace, model=MODEL, max_retries=0, **kw)
        clients.append(client)
        return client

    yield db, make_client
    for c in clients:
        c.close()


@pytest.fixture(scope="module")
def encoder():
    from re2llm_tui.embeddings import get_encoder

    return get_encoder()


def run(db, client, encoder, **kw):
    return asyncio.run(explore(db, client, Dataset.resolve(kw.pop("dataset", "games")), encoder=encoder, **kw))


SESSION = "train-0001"   # target: "Bioshock 2 - Xbox 360"


def five_hints(target):
    return [
        "Recommend sequels of games the user already owns.",                           # added
        f"Recommend {target} first.",                                                   # leak
        "Include games that have won critical acclaim or awards.",                      # duplicate of #20
        "Pay attention to the platforms in the user's purchase history and include relevant items.",  # embedding-redundant (#3)
        "Prefer accessories over games.",                                               # ineffective
    ]


# --------------------------------------------------------------------------- the four turns

def test_four_turns_in_order_and_stored(env, encoder):
    db, make_client = env
    s = get_session("games", SESSION)
    script = Script([s], five_hints(s.target)[:1], steer={"sequels": 3})
    summary = run(db, make_client(script), encoder, session_id=SESSION)
    assert summary.reflected == 1 and summary.added == 1

    conv = [m for m in script.seen if len(m) > 1]
    assert [len(m) for m in conv] == [3, 5, 7], "turns 2-4 extend one conversation"
    first = script.seen[0]
    assert first == [{"role": "user", "content": s.prompt}], "turn 1 is the plain recommendation"
    final = conv[-1]
    assert final[0]["content"] == s.prompt
    assert final[2]["content"] == prompts.reflection_mistakes_prompt()
    assert final[4]["content"] == prompts.reflection_analysis_prompt(s.target)
    assert final[6]["content"] == prompts.reflection_hints_prompt(5)
    assert s.target not in final[2]["content"], "the target is revealed only in turn 3"
    assert s.target in final[4]["content"]

    rec = reflection_record(db, summary.outcomes[0].reflection_id)
    assert rec["status"] == "done" and rec["session_id"] == SESSION
    assert rec["prompt_version"] == prompts.REFLECTION_VERSION
    turns = [t for t in rec["turns"] if t["turn"] is not None]
    assert [(t["turn"], t["kind"], t["role"]) for t in turns] == [
        (1, "recommend", "user"), (1, "recommend", "assistant"),
        (2, "mistakes", "user"), (2, "mistakes", "assistant"),
        (3, "analysis", "user"), (3, "analysis", "assistant"),
        (4, "hints", "user"), (4, "hints", "assistant")]
    # the stored transcript is exactly the conversation the LLM saw
    assert [{"role": t["role"], "content": t["content"]} for t in turns[:7]] == final
    assert turns[7]["content"].startswith("Here are the hints:")
    assert all(t["call_id"] for t in turns if t["role"] == "assistant")
    assert rec["baseline_source"] == "llm" and rec["baseline_rank"] is None


# --------------------------------------------------------------------------- the checks

def test_each_check_passes_and_fails(env, encoder):
    db, make_client = env
    s = get_session("games", SESSION)
    hints = five_hints(s.target) + ["Favour titles in the series the user has been playing lately."]
    script = Script([s], hints, steer={"sequels": 3, "series": 5, "accessories": None},
                    similar=["series"])
    summary = run(db, make_client(script), encoder, session_id=SESSION,
                  config=ReflectConfig(max_hints=6))
    checks = {c.idx: c for c in summary.outcomes[0].checks}
    assert [checks[i].verdict for i in range(1, 7)] == [
        "added", "leak", "duplicate", "redundant", "ineffective", "redundant"]
    assert checks[2].leak == "Bioshock 2"
    assert checks[3].similar_id == 20
    assert checks[4].similar_id == 3 and checks[4].similarity >= 0.8
    assert checks[4].rank_with is None, "redundant by embedding: no LLM call spent on it"
    assert checks[5].rank_with is None and checks[5].ndcg_with == 0.0
    assert checks[5].similarity < 0.8
    assert checks[6].rank_with == 5 and checks[6].llm_similar_id is not None
    assert checks[6].llm_reply == "Yes, 1"
    assert (summary.proposed, summary.leak, summary.ineffective, summary.redundant,
            summary.added) == (6, 1, 1, 3, 1)

    # only the survivor reached the KB, as a candidate, with its provenance
    cands = kb.KnowledgeBase(db, Dataset.resolve("games")).hints("candidate")
    assert [h.text for h in cands] == [hints[0]]
    h = cands[0]
    assert h.source == "reflection" and h.session_id == SESSION
    assert h.reflection_id == summary.outcomes[0].reflection_id
    assert h.effect["rank_without"] is None and h.effect["rank_with"] == 3
    assert h.effect["ndcg_without"] == 0.0 and h.effect["ndcg_with"] == pytest.approx(0.5)
    assert h.similar_id == checks[1].similar_id and 0 < h.similarity < 0.8
    assert kb.KnowledgeBase(db, Dataset.resolve("games")).version() == kb.KnowledgeBase(db, Dataset.resolve("games")).actions()[0]
    assert h.id not in [i for i, _ in kb.KnowledgeBase(db, Dataset.resolve("games")).actions()[1]], "candidates are not actions"

    # the reflection links to the hint; the check conversations are stored per proposal
    rec = reflection_record(db, h.reflection_id)
    assert (rec["n_proposed"], rec["n_leak"], rec["n_ineffective"], rec["n_redundant"],
            rec["n_added"]) == (6, 1, 1, 3, 1)
    by_idx = {r["idx"]: r for r in rec["hints"]}
    assert by_idx[1]["hint_id"] == h.id and by_idx[1]["verdict"] == "added"
    effect_msgs = [t for t in rec["turns"] if t["kind"] == "effect"]
    assert sorted({t["proposal"] for t in effect_msgs}) == [1, 5, 6]
    asked = [t for t in effect_msgs if t["role"] == "user" and t["proposal"] == 1][0]
    assert asked["content"] == prompts.recommend_prompt(s.prompt, hints[0])
    red = [t for t in rec["turns"] if t["kind"] == "redundancy"]
    assert {t["proposal"] for t in red} == {1, 6}
    assert '"Recommend sequels' in [t for t in red if t["role"] == "user"][0]["content"]


def test_auto_accept_makes_the_survivor_an_action(env, encoder):
    db, make_client = env
    s = get_session("games", SESSION)
    v0 = kb.KnowledgeBase(db, Dataset.resolve("games")).version()
    script = Script([s], five_hints(s.target)[:1], steer={"sequels": 2})
    run(db, make_client(script), encoder, session_id=SESSION,
        config=ReflectConfig(auto_accept=True))
    version, actions = kb.KnowledgeBase(db, Dataset.resolve("games")).actions()
    assert version != v0 and actions[-1][1] == "Recommend sequels of games the user already owns."


@pytest.mark.parametrize("mode, verdict", [("enter", "added"), ("improve", "ineffective")])
def test_effectiveness_mode(env, encoder, mode, verdict):
    """Baseline rank 8 is a miss for miss_k=5; with the hint the target is at 9: it is in the
    top 10 ("enter" keeps it) but NDCG@10 got worse ("improve" drops it)."""
    db, make_client = env
    s = get_session("games", SESSION)
    script = Script([s], ["Recommend sequels of games the user already owns."],
                    steer={"sequels": 9}, baseline_rank=8)
    summary = run(db, make_client(script), encoder, session_id=SESSION,
                  config=ReflectConfig(miss_k=5, effect_mode=mode))
    c = summary.outcomes[0].checks[0]
    assert summary.outcomes[0].baseline_rank == 8
    assert (c.rank_without, c.rank_with) == (8, 9)
    assert c.ndcg_with < c.ndcg_without
    assert c.verdict == verdict


def test_similarity_threshold_is_configurable(env, encoder):
    db, make_client = env
    s = get_session("games", SESSION)
    paraphrase = five_hints(s.target)[3]
    script = Script([s], [paraphrase], steer={"platforms": 4})
    summary = run(db, make_client(script), encoder, session_id=SESSION,
                  config=ReflectConfig(sim_threshold=0.99, llm_redundancy=False))
    c = summary.outcomes[0].checks[0]
    assert c.verdict == "added" and 0.8 <= c.similarity < 0.99


# --------------------------------------------------------------------------- sessions

def test_a_session_the_baseline_hits_is_not_reflected(env, encoder):
    db, make_client = env
    s = get_session("games", SESSION)
    script = Script([s], ["unused hint text here"], baseline_rank=2)
    summary = run(db, make_client(script), encoder, session_id=SESSION)
    assert (summary.hits, summary.reflected, summary.proposed) == (1, 0, 0)
    assert len(script.seen) == 1
    assert reflections_of(db, "games", SESSION)[0]["status"] == "hit"


def test_stored_baseline_reply_is_reused(env, encoder):
    db, make_client = env
    s = get_session("games", SESSION)
    run_id = create_run(db, name="baseline", kind="recommend", dataset="games", split="train",
                        model=MODEL)
    stored = "\n".join(f"{i}. {t}" for i, t in
                       enumerate([c for c in s.candidates if c != s.target][10:20], 1))
    ranking = [s.candidates.index(c) for c in [c for c in s.candidates if c != s.target][10:20]]
    add_run_item(db, run_id, s.id, prompt=s.prompt, reply=stored, ranking=ranking,
                 target_rank=None)
    script = Script([s], five_hints(s.target)[:1], steer={"sequels": 3})
    summary = run(db, make_client(script), encoder, session_id=SESSION)
    assert summary.reflected == 1
    assert len(script.seen[0]) == 3, "no recommendation call: the first call is turn 2"
    assert script.seen[0][1] == {"role": "assistant", "content": stored}
    rec = reflection_record(db, summary.outcomes[0].reflection_id)
    assert rec["baseline_source"] == f"run:{run_id}"
    assert rec["turns"][1]["content"] == stored and rec["turns"][1]["source"] == f"run:{run_id}"


def test_explore_is_resumable_and_stops_on_budget(env, encoder):
    db, make_client = env
    ss = load_sessions("games", "train")[:4]
    hints = ["Recommend sequels of games the user already owns."]
    script = Script(ss, hints, steer={"sequels": 3})
    # 1 session = 1 rank + 3 turns + 1 effect + 1 redundancy = 6 calls (later sessions: the
    # hint is a duplicate, 4 calls); 8 calls end inside the second session
    client = make_client(script, max_calls=8)
    progress = []
    summary = run(db, client, encoder, sessions=3, on_progress=progress.append)
    assert summary.stopped and "max-calls" in summary.stopped
    assert summary.reflected == 1 and summary.calls == 8
    statuses = [r["status"] for r in reflections_of(db, "games")]
    assert statuses == ["done", "stopped"]
    assert progress[-1].stage == "stopped"
    assert {p.stage for p in progress} >= {"baseline", "turn 2", "turn 3", "turn 4", "check 1/1"}

    client2 = make_client(script)
    summary2 = run(db, client2, encoder, sessions=3)
    assert summary2.stopped is None
    assert summary2.already == 1, "the finished session is skipped"
    assert summary2.reflected == 3 and summary2.cache_hits == 2, "the stopped session resumes from the cache"
    assert [r["status"] for r in reflections_of(db, "games")] == ["done", "stopped", "done", "done", "done"]
    assert len(kb.KnowledgeBase(db, Dataset.resolve("games")).hints("candidate")) == 1
    assert summary2.redundant == 3, "the same hint from later sessions is a duplicate"

    client3 = make_client(script)
    summary3 = run(db, client3, encoder, session_id=ss[2].id)
    assert (summary3.already, summary3.examined, client3.stats.calls) == (1, 0, 0)


def test_a_failed_llm_call_marks_the_session_and_the_run_goes_on(env, encoder):
    db, make_client = env
    ss = load_sessions("games", "train")[:2]
    script = Script(ss, ["Recommend sequels of games the user already owns."],
                    steer={"sequels": 3},
                    fail_on=prompts.reflection_analysis_prompt(ss[0].target))  # its turn 3 fails
    summary = run(db, make_client(script), encoder, sessions=2)
    assert summary.failed == 1 and summary.reflected == 1
    recs = reflections_of(db, "games")
    assert recs[0]["status"] == "failed" and "scripted failure" in recs[0]["error"]
    assert recs[1]["status"] == "done"


def test_a_hint_with_the_target_title_is_rejected_on_every_real_session(data_dir):
    for dataset in ("games", "movies"):
        for s in load_sessions(dataset, "train"):
            assert leak_of(f"Recommend {s.target}.", s.target), s.target
            assert leak_of(f"Try something like {s.target.lower()} next", s.target), s.target


def test_leak_check_is_sane():
    # distinctive parts of the title leak
    assert leak_of("Recommend more Bioshock titles.", "Bioshock 2 - Xbox 360") == "bioshock"
    assert leak_of("Look for Final Fantasy spin-offs.",
                   "Final Fantasy Crystal Chronicles: The Crystal Bearers") == "final fantasy"
    assert leak_of("Include Elder Scrolls games.", "The Elder Scrolls Anthology") == "elder scrolls"
    assert leak_of("Consider the Addams films.", "The Addams Family") == "addams"
    assert leak_of("Watch K-PAX.", "K-PAX") is not None
    assert leak_of("Consider Léon.", "Léon") is not None
    # platform names, genre and common words do not
    assert leak_of("Prefer Xbox 360 shooters.", "Bioshock 2 - Xbox 360") is None
    assert leak_of("Consider fantasy role-playing games.",
                   "Final Fantasy Crystal Chronicles: The Crystal Bearers") is None
    assert leak_of("Prefer dead-serious dramas.", "Dawn of the Dead") is None
    assert leak_of("Include family-friendly films.", "The Addams Family") is None
    # a title made of stop words only leaks verbatim
    assert leak_of("Look up films by the same director.", "Up") is None
    assert leak_of("Consider Up and other animated films.", "Up") == "Up"


def test_release_hints_almost_never_count_as_leaks(data_dir):
    hints = load_release_hints("games", data_dir)[1:] + load_release_hints("movies", data_dir)[1:]
    pairs = flagged = 0
    for dataset in ("games", "movies"):
        for s in load_sessions(dataset, "train") + load_sessions(dataset, "test"):
            for h in hints:
                pairs += 1
                flagged += leak_of(h, s.target) is not None
    assert flagged / pairs < 0.001


# --------------------------------------------------------------------------- parsing

def test_parse_hints_formats():
    reply = ("Sure! Here are some hints:\n\n1. **Consider** the platform of recent purchases.\n"
             "2) \"Prefer sequels to owned series.\"\n- Hint 3: Weigh recent items more.\n"
             "* Prefer sequels to owned series.\n4. Ok\nI hope these help!")
    assert parse_hints(reply) == ["Consider the platform of recent purchases.",
                                  "Prefer sequels to owned series.", "Weigh recent items more."]
    inline = "1. Look at the platform. 2. Prefer recent releases now. 3. Mind the price range."
    assert parse_hints(inline) == ["Look at the platform.", "Prefer recent releases now.",
                                   "Mind the price range."]
    assert parse_hints(reply, max_hints=1) == ["Consider the platform of recent purchases."]
    assert parse_hints("") == [] and parse_hints(None) == []
    # a reply without a list: every line but the chatter around it
    loose = ('Here\'s a hint:\n\n"Pay attention to the category of the recent items."\n\n'
             "This hint is one imperative sentence about what to pay attention to.")
    assert parse_hints(loose) == ["Pay attention to the category of the recent items."]


# --------------------------------------------------------------------------- CLI

def test_cli_explore_summary(env, encoder, run_cli, workspace, data_dir, monkeypatch):
    db, make_client = env
    s = get_session("games", SESSION)
    from re2llm_tui.llm.scripted import register_scripted

    hints = five_hints(s.target)
    register_scripted("scripted", Script([s], hints, steer={"sequels": 3}))
    monkeypatch.setattr("re2llm_tui.embeddings._encoder", encoder)
    code, out, err = run_cli("explore", "-d", "games", "--session", SESSION, "--model", MODEL,
                             "--db", workspace, "--data-dir", data_dir)
    assert code == 0, err
    assert "sessions reflected: 1" in out and "hints proposed: 5" in out
    assert "failing leak check: 1" in out and "failing effectiveness check: 1" in out
    assert "failing redundancy check: 2" in out and "candidates added: 1" in out
    code, out, err = run_cli("explore", "-d", "games", "--session", SESSION, "--model", MODEL,
                             "--db", workspace, "--data-dir", data_dir, "--json")
    data = json.loads(out)
    assert data["already"] == 1 and data["reflected"] == 0 and data["calls"] == 0


@pytest.mark.parametrize("args, message", [
    (("--session", "train-0001", "--sessions", "2"), "either --sessions or --session"),
    (("--session", "train-9999"), "no session 'train-9999'"),
    (("--effect-mode", "better"), "unknown effectiveness mode"),
    (("--threshold", "1.5"), "similarity threshold"),
])
def test_cli_explore_bad_input(run_cli, workspace, data_dir, args, message):
    code, out, err = run_cli("explore", "-d", "games", "--model", MODEL, "--db", workspace,
                             "--data-dir", data_dir, *args)
    assert code == 2 and err.startswith("re2llm-tui: error: ") and message in err
    assert err.count("\n") == 1


# --------------------------------------------------------------------------- the real model

@pytest.mark.slow
def test_explore_one_real_session_with_the_embedded_model(run_cli, workspace, data_dir):
    """End to end: the embedded SmolLM2-135M ranks, reflects and is asked about its hints."""
    pytest.importorskip("llama_cpp")
    # miss_k=1: the session counts as missed unless the model ranks the target first
    code, out, err = run_cli("explore", "-d", "games", "--session", "train-0003",
                             "--model", "local/smollm2-135m", "--miss-k", "1",
                             "--max-hints", "1", "--max-tokens", "80", "--db", workspace,
                             "--data-dir", data_dir,
                             "--json")
    assert code == 0, err
    summary = json.loads(out)
    db = open_workspace(workspace)
    rec = reflection_record(db, reflections_of(db, "games", "train-0003")[0]["id"])
    if rec["status"] == "hit":
        pytest.fail("the demo model ranked the target first; pick another session")
    assert rec["status"] == "done" and summary["reflected"] == 1
    turns = [t for t in rec["turns"] if t["turn"] is not None]
    assert [t["turn"] for t in turns] == [1, 1, 2, 2, 3, 3, 4, 4]
    assert all(t["content"].strip() for t in turns if t["role"] == "assistant")
    assert summary["proposed"] == len(rec["hints"]) <= 1
    assert summary["leak"] + summary["ineffective"] + summary["redundant"] + summary["added"] \
        == summary["proposed"]
    for h in rec["hints"]:
        if h["verdict"] in ("ineffective", "added", "redundant") and h["rank_with"] is not None:
            assert any(t["kind"] == "effect" and t["proposal"] == h["idx"] for t in rec["turns"])


def test_explore_dry_run_counts_an_interrupted_sessions_cached_turns(env, encoder, run_cli,
                                                                     workspace, data_dir,
                                                                     monkeypatch):
    """After a run that was stopped part-way (its reflection not finished), the dry run
    rebuilds each turn from the cached replies: every request the real run made is found in
    the cache (the redundancy checks, whose shown hints depend on embeddings, stay to pay)."""
    import sqlite3

    from re2llm_tui.llm.scripted import register_scripted

    s = get_session("games", SESSION)
    register_scripted("scripted", Script([s], five_hints(s.target), steer={"sequels": 3}))
    monkeypatch.setattr("re2llm_tui.embeddings._encoder", encoder)
    base = ["-d", "games", "--session", SESSION, "--model", MODEL, "--db", workspace,
            "--data-dir", data_dir]
    code, out, err = run_cli("explore", *base)
    assert code == 0, err
    con = sqlite3.connect(workspace)
    made = con.execute("SELECT COUNT(*) FROM calls WHERE cached=0 AND status='ok' AND "
                       "purpose != 'reflect:redundancy'").fetchone()[0]
    redundancy = con.execute("SELECT COUNT(*) FROM calls WHERE cached=0 AND "
                             "purpose='reflect:redundancy'").fetchone()[0]
    with con:
        con.execute("UPDATE reflections SET status='stopped'")     # as if it was interrupted
    con.close()
    code, out, err = run_cli("explore", "--dry-run", *base, "--json")
    assert code == 0, err
    est = json.loads(out)
    assert est["cached"] == made >= 1 + 3 + 1
    assert est["to_pay"] == est["calls"] - made and redundancy <= est["to_pay"]
    assert any("found in the cache" in n for n in est["notes"])


def test_explore_dry_run_skips_sessions_whose_stored_baseline_hits(env, run_cli, workspace,
                                                                  data_dir):
    from re2llm_tui.llm.scripted import register_scripted

    sessions = [get_session("games", "train-0000"), get_session("games", SESSION)]
    register_scripted("scripted", Script(sessions, [], baseline_rank=2))
    code, out, err = run_cli("recommend", "-d", "games", "--split", "train", "--limit", "2",
                             "--model", MODEL, "--db", workspace, "--data-dir", data_dir)
    assert code == 0, err
    code, out, err = run_cli("explore", "--dry-run", "-d", "games", "--sessions", "2",
                             "--model", MODEL, "--db", workspace, "--data-dir", data_dir,
                             "--json")
    assert code == 0, err
    est = json.loads(out)
    assert est["calls"] == 0 and est["stored"] == 2
    assert any("already hits the target" in n for n in est["notes"])
