"""A workspace with deterministic content for the TUI tests and snapshots.

The stored runs are fixtures (fixed rankings written through :mod:`re2llm_tui.store.runs`), not
LLM output: they let the screens be checked without any model.  The reflection rows follow
the workspace schema (``reflections``, ``reflection_turns``, ``reflection_hints``).
"""

from __future__ import annotations

import contextlib

import json
import os
from pathlib import Path

from replies import ranked_reply

from re2llm_tui.data.dataset import Dataset

from re2llm_tui.data.release import load_sessions
from re2llm_tui.evaluation import metrics
from re2llm_tui.kb import store as kb
from re2llm_tui.store import runs
from re2llm_tui.store.workspace import open_workspace

DATASET = "games"
N_BASELINE = 40            # train sessions with a stored no-hint ranking
SIZE_SMALL = (100, 30)
SIZE_LARGE = (200, 50)


def fixture_ranking(session, shift: int) -> list[int]:
    """10 distinct candidate indices; the target at rank 1 + (shift % 14) (absent if > 10)."""
    others = [i for i in range(len(session.candidates)) if i != session.target_index]
    pos = shift % 14
    ranking = others[:10]
    if pos < 10:
        ranking.insert(pos, session.target_index)
    return ranking[:10]


def build_workspace(path: Path, data_dir) -> dict:
    """Fill ``path`` with a baseline run, a hinted run, a reflection and candidate hints."""
    db = open_workspace(path)
    sessions = load_sessions(DATASET, "train", data_dir)[:N_BASELINE]
    kb.KnowledgeBase(db, Dataset.resolve(DATASET, data_dir))  # seeds the KB
    base = runs.create_run(db, name="fixture baseline", kind="score", dataset=DATASET,
                           split="train", model="fixture", prompt_version="release-v1")
    ranks = []
    for i, s in enumerate(sessions):
        ranking = fixture_ranking(s, i * 5)
        rank = metrics.rank_of(ranking, s.target_index)
        ranks.append(rank)
        runs.add_run_item(db, base, s.id, prompt=s.prompt, reply="\n".join(
            f"{k}. {s.candidates[j]}" for k, j in enumerate(ranking, 1)) + "\n11. Halo 9",
            ranking=ranking, hallucinations=["Halo 9"] if i % 3 == 0 else [],
            target_rank=rank)
    runs.finish_run(db, base, metrics.summarize(ranks, n_boot=10))
    missed = next(s for s, r in zip(sessions, ranks) if r is None or r > 10)
    hinted = runs.create_run(db, name="fixture hint 3", kind="recommend", dataset=DATASET,
                             split="train", model="fixture", prompt_version="release-v1+hint-v1",
                             hint_id=3, hint_text=kb.KnowledgeBase(db, Dataset.resolve(DATASET)).get(3).text)
    ranking = fixture_ranking(missed, 1)
    runs.add_run_item(db, hinted, missed.id, prompt=missed.prompt, reply="...",
                      ranking=ranking, hallucinations=[],
                      target_rank=metrics.rank_of(ranking, missed.target_index))
    runs.finish_run(db, hinted, None)
    # one reflection of the missed session, with two proposals: one added, one leaking
    cur = db.execute(
        "INSERT INTO reflections(dataset, session_id, model, prompt_version, status, "
        "baseline_source, baseline_ranking, baseline_rank, n_proposed, n_leak, n_added, "
        "created_at, finished_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
        [DATASET, missed.id, "fixture", "reflect-v1", "done", f"run:{base}",
         json.dumps(fixture_ranking(missed, 12)), None, 2, 1, 1,
         "2025-01-01T00:00:00Z", "2025-01-01T00:01:00Z"])
    rid = cur.lastrowid
    turns = [(1, "recommend", "user", "(the release prompt)"),
             (1, "recommend", "assistant", "1. " + missed.candidates[0]),
             (2, "mistakes", "user", "None of the items you recommended is the target."),
             (2, "mistakes", "assistant", "I focused on the genre of the last item only."),
             (3, "analysis", "user", "The correct answer is the target. Analyse why."),
             (3, "analysis", "assistant", "The user returned to an earlier franchise."),
             (4, "hints", "user", "Give short imperative hints."),
             (4, "hints", "assistant", "1. Consider franchises seen earlier in the session.\n"
                                       f"2. Recommend {missed.target}.")]
    for seq, (turn, kind, role, content) in enumerate(turns, 1):
        db.execute("INSERT INTO reflection_turns(reflection_id, seq, turn, kind, role, content, "
                   "source, at) VALUES (?,?,?,?,?,?,?,?)",
                   [rid, seq, turn, kind, role, content, "llm", "2025-01-01T00:00:00Z"])
    cand = kb.KnowledgeBase(db, Dataset.resolve(DATASET)).add("Consider franchises seen earlier in the session.",
                       source="reflection", session_id=missed.id, reflection_id=rid,
                       effect={"rank_without": None, "rank_with": 4}, similar_id=3,
                       similarity=0.41)
    second = kb.KnowledgeBase(db, Dataset.resolve(DATASET)).add("Prefer games for the same console as the last one.",
                         source="reflection", session_id=missed.id, reflection_id=rid,
                         effect={"rank_without": None, "rank_with": 7}, similar_id=cand.id,
                         similarity=0.52)
    db.execute("INSERT INTO reflection_hints(reflection_id, idx, text, verdict, leak, "
               "rank_without, rank_with, ndcg_without, ndcg_with, similar_id, similarity, "
               "hint_id) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
               [rid, 1, cand.text, "added", None, None, 4, 0.0, metrics.ndcg_at(4, 10), 3,
                0.41, cand.id])
    db.execute("INSERT INTO reflection_hints(reflection_id, idx, text, verdict, leak) "
               "VALUES (?,?,?,?,?)", [rid, 2, f"Recommend {missed.target}.", "leak",
                                      missed.target])
    db.conn.close()
    return {"baseline_run": base, "hinted_run": hinted, "missed": missed.id,
            "candidate_ids": [cand.id, second.id], "reflection_id": rid}


@contextlib.contextmanager
def scripted_stub(data_dir, n_train: int, n_test: int):
    """A loopback OpenAI-compatible server (tests/stub_server.py) answering with
    :class:`TuiScript`'s rankings for the first ``n_train`` train and ``n_test`` test
    sessions: what a spawned job process reaches as it would reach a real server."""
    from stub_server import StubServer

    from re2llm_tui.data.release import load_sessions

    script = TuiScript(load_sessions(DATASET, "train", data_dir)[:n_train]
                       + load_sessions(DATASET, "test", data_dir)[:n_test])
    with StubServer(reply_fn=script) as srv:
        yield srv


def make_fixture_app(tmp_path: Path, data_dir, **kw):
    """The app on a filled workspace; cwd must be ``tmp_path`` for a stable header."""
    from re2llm_tui.tui.app import make_app

    info = build_workspace(tmp_path / "kb.sqlite", data_dir)
    kw.setdefault("llm_options", {"max_retries": 0})
    app = make_app(DATASET, model=kw.pop("model", "local/smollm2-135m"), db="kb.sqlite",
                   data_dir=data_dir, **kw)
    return app, info


if __name__ == "__main__":  # build a workspace by hand: python tests/tui_snapshot_app.py DIR
    import sys

    target = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    target.mkdir(parents=True, exist_ok=True)
    print(build_workspace(target / "kb.sqlite", os.environ.get("RE2LLM_DATA")))


# --------------------------------------------------------------------------- scripted LLM

SCRIPTED_MODEL = "scripted/tui"
GOOD_HINT = "Recommend sequels of games the user already owns."


class TuiScript:
    """Replies of a plausible LLM (a test double registered as a litellm custom provider).

    Rankings: without a hint the target is left out (a miss); with a hint containing
    ``GOOD_HINT``'s words the target comes at rank 2; other hints leave it out.  Reflection
    turns answer in the shape the reflection prompts ask for; the turn-4 reply proposes
    ``GOOD_HINT`` and a hint that names the target (a leak).
    """

    def __init__(self, sessions) -> None:
        self.by_prompt = {s.prompt.rstrip(): s for s in sessions}
        self.calls = 0

    def _session(self, text: str):
        for prompt, s in self.by_prompt.items():
            if text.startswith(prompt):
                return s
        raise AssertionError(f"unknown prompt {text[:60]!r}")

    def __call__(self, messages) -> str:
        from re2llm_tui import prompts

        self.calls += 1
        last = messages[-1]["content"]
        if "candidate set:" in last and len(messages) == 1:
            s = self._session(last)
            hint = last.split(" Hint: ", 1)[1] if " Hint: " in last else None
            return ranked_reply(s, 2 if hint and "sequels" in hint else None)
        if last == prompts.reflection_mistakes_prompt():
            return "I over-weighted accessories and ignored the user's recent games."
        if last.startswith("The correct answer is"):
            return "1. Series: the user owns earlier parts of the franchise."
        if last.startswith("Based on your analysis"):
            s = next(iter(self.by_prompt.values()))
            for m in messages:
                if "candidate set:" in m["content"]:
                    s = self._session(m["content"])
                    break
            return f"1. {GOOD_HINT}\n2. Recommend {s.target} first."
        if last.startswith("Here are the hints already"):
            return "No"
        raise AssertionError(f"unexpected message {last[:60]!r}")


def register_tui_script(sessions) -> TuiScript:
    from re2llm_tui.llm.scripted import register_scripted

    script = TuiScript(sessions)
    register_scripted("scripted", script)
    return script
