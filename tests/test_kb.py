"""The hint KB on the real release hints: seeding, changes + history, undo, search, version,
hints.json round trip, and bad input leaving the KB unchanged."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from re2llm_tui.data.dataset import Dataset
from re2llm_tui.data.release import load_release_hints
from re2llm_tui.errors import UserError, WorkspaceError
from re2llm_tui.kb import store as kb
from re2llm_tui.store.workspace import open_workspace

FOLDER = {"games": "game", "movies": "movie"}


@pytest.fixture
def db(workspace, data_dir, monkeypatch):
    monkeypatch.setenv("RE2LLM_DATA", str(data_dir))
    wdb = open_workspace(workspace)
    for dataset in ("games", "movies"):
        kb.KnowledgeBase(wdb, Dataset.resolve(dataset))  # seeds the KB
    return wdb


def snapshot(db) -> dict:
    """Everything a change may touch: hint rows, the FTS index (checked), the accepted set."""
    db.execute("INSERT INTO hints_fts(hints_fts) VALUES ('integrity-check')")
    rows = list(db.query("SELECT * FROM hints ORDER BY uid"))
    fts = list(db.query("SELECT rowid, text FROM hints_fts ORDER BY rowid"))
    meta = list(db.query("SELECT * FROM meta WHERE key LIKE 'kb_seeded:%' ORDER BY key"))
    return {"rows": rows, "fts": fts, "seeded": meta}


# --------------------------------------------------------------------------- seeding

@pytest.mark.parametrize("dataset", ["games", "movies"])
def test_seeded_once_with_release_hints(db, dataset, data_dir):
    release = load_release_hints(dataset, data_dir)
    hints = kb.KnowledgeBase(db, Dataset.resolve(dataset)).hints()
    assert [h.id for h in hints] == list(range(1, len(release)))
    assert all(h.status == "accepted" and h.source == "release" for h in hints)
    assert [h.text for h in hints] == [" ".join(t.split()) for t in release[1:]]
    # deleting everything does not trigger a second seeding
    kb.KnowledgeBase(db, Dataset.resolve(dataset)).delete([h.id for h in hints])
    assert kb.KnowledgeBase(db, Dataset.resolve(dataset)).hints() == []
    assert kb.KnowledgeBase(db, Dataset.resolve(dataset)).seeded is False
    assert kb.KnowledgeBase(db, Dataset.resolve(dataset)).hints() == []


def test_datasets_are_separate(db):
    h = kb.KnowledgeBase(db, Dataset.resolve("games")).add("Prefer handheld titles when the history is handheld-heavy.")
    assert h.id == 21
    assert all(x.text != h.text for x in kb.KnowledgeBase(db, Dataset.resolve("movies")).hints())
    with pytest.raises(UserError, match="no hint #21 in the movies KB"):
        kb.KnowledgeBase(db, Dataset.resolve("movie")).get(21)


def test_movie_entities_decoded_and_raw_kept(db, data_dir):
    h = kb.KnowledgeBase(db, Dataset.resolve("movies")).get(1)
    assert "&#39;" not in h.text and "user's history" in h.text
    assert "&#39;" in h.raw_text


# --------------------------------------------------------------------------- version

def test_action_list_and_version_track_the_accepted_set(db):
    v0, actions = kb.KnowledgeBase(db, Dataset.resolve("games")).actions()
    assert actions[0] == (0, "")
    assert [i for i, _ in actions[1:]] == list(range(1, 21))
    rev0 = kb.KnowledgeBase(db, Dataset.resolve("games")).revision()

    cand = kb.KnowledgeBase(db, Dataset.resolve("games")).add("Weigh the most recent purchases more than older ones.")
    assert kb.KnowledgeBase(db, Dataset.resolve("games")).version() == v0, "a candidate is not an action"
    assert kb.KnowledgeBase(db, Dataset.resolve("games")).revision() == rev0

    kb.KnowledgeBase(db, Dataset.resolve("games")).accept([cand.id])
    v1, actions1 = kb.KnowledgeBase(db, Dataset.resolve("games")).actions()
    assert v1 != v0 and actions1[-1] == (cand.id, cand.text)
    assert kb.KnowledgeBase(db, Dataset.resolve("games")).revision() == rev0 + 1

    kb.KnowledgeBase(db, Dataset.resolve("games")).edit(cand.id, "Weigh recent purchases more than older ones.")
    v2 = kb.KnowledgeBase(db, Dataset.resolve("games")).version()
    assert v2 not in (v0, v1), "editing an accepted hint changes the version"

    kb.KnowledgeBase(db, Dataset.resolve("games")).reject([3])
    v3, actions3 = kb.KnowledgeBase(db, Dataset.resolve("games")).actions()
    assert v3 != v2 and 3 not in [i for i, _ in actions3]

    kb.KnowledgeBase(db, Dataset.resolve("games")).undo()
    assert kb.KnowledgeBase(db, Dataset.resolve("games")).version() == v2, "the version is a content hash of the accepted set"
    assert kb.KnowledgeBase(db, Dataset.resolve("games")).revision() == rev0 + 4, "the revision counter only grows"


# --------------------------------------------------------------------------- undo


def _do(db, action):
    if action == "add":
        kb.KnowledgeBase(db, Dataset.resolve("games")).add("Recommend sequels of games already owned.", status="accepted")
    elif action == "edit":
        kb.KnowledgeBase(db, Dataset.resolve("games")).edit(5, "Prefer games released in the same era as the purchased ones.")
    elif action == "reject":
        kb.KnowledgeBase(db, Dataset.resolve("games")).reject([2, 7])
    elif action == "merge":
        kb.KnowledgeBase(db, Dataset.resolve("games")).merge(4, [18], text="Favour accessories for the consoles the user owns.")
    elif action == "delete":
        kb.KnowledgeBase(db, Dataset.resolve("games")).delete([1, 20])


@pytest.mark.parametrize("action", ["add", "edit", "accept", "reject", "merge", "delete", "import"])
def test_undo_restores_the_exact_previous_state(db, action, tmp_path):
    kb.KnowledgeBase(db, Dataset.resolve("games")).hints()
    if action == "accept":
        h = kb.KnowledgeBase(db, Dataset.resolve("games")).add("Balance accessories and games in the list.")
        before = snapshot(db)
        kb.KnowledgeBase(db, Dataset.resolve("games")).accept([h.id])
    elif action == "import":
        f = tmp_path / "more.json"
        f.write_text(json.dumps(["", "Look at the series the user follows.",
                                 "Include games that have won critical acclaim or awards.",
                                 "Mind the user&#39;s favourite studio."]))
        before = snapshot(db)
        report = kb.KnowledgeBase(db, Dataset.resolve("games")).import_file(f)
        assert len(report.added) == 2 and len(report.skipped) == 1
    else:
        before = snapshot(db)
        _do(db, action)
    assert snapshot(db) != before
    n_hist = len(kb.KnowledgeBase(db, Dataset.resolve("games")).history())
    entry = kb.KnowledgeBase(db, Dataset.resolve("games")).undo()
    assert entry["action"] == action
    assert snapshot(db) == before
    hist = kb.KnowledgeBase(db, Dataset.resolve("games")).history()
    assert len(hist) == n_hist + 1 and hist[0]["action"] == "undo"
    assert hist[1]["undone_by"] == hist[0]["seq"]


def test_undo_walks_back_several_changes_but_not_the_seeding(db):
    s0 = snapshot(db)
    kb.KnowledgeBase(db, Dataset.resolve("games")).add("Prefer budget titles for a budget-minded user.")
    s1 = snapshot(db)
    kb.KnowledgeBase(db, Dataset.resolve("games")).delete([9])
    kb.KnowledgeBase(db, Dataset.resolve("games")).undo()
    assert snapshot(db) == s1
    kb.KnowledgeBase(db, Dataset.resolve("games")).undo()
    assert snapshot(db) == s0
    with pytest.raises(UserError, match="nothing to undo"):
        kb.KnowledgeBase(db, Dataset.resolve("games")).undo()
    assert snapshot(db) == s0


def test_every_change_is_in_the_history_with_full_rows(db):
    h = kb.KnowledgeBase(db, Dataset.resolve("movies")).add("Prefer films from the decade the user watches most.")
    kb.KnowledgeBase(db, Dataset.resolve("movies")).edit(h.id, "Prefer films from the decade the user watches most often.")
    kb.KnowledgeBase(db, Dataset.resolve("movies")).accept([h.id])
    kb.KnowledgeBase(db, Dataset.resolve("movies")).merge(h.id, [1])
    kb.KnowledgeBase(db, Dataset.resolve("movies")).delete([h.id])
    hist = kb.KnowledgeBase(db, Dataset.resolve("movies")).history()
    assert [e["action"] for e in hist] == ["delete", "merge", "accept", "edit", "add", "seed"]
    edit = hist[3]
    assert edit["before"][0]["text"].endswith("most.") and edit["after"][0]["text"].endswith("often.")
    merge = hist[1]
    assert {r["id"] for r in merge["after"]} == {h.id, 1}
    assert [r for r in merge["after"] if r["id"] == 1][0]["merged_into"] == h.id
    assert hist[0]["after"] == [] and hist[0]["before"][0]["id"] == h.id
    # ids are never reused, even after a delete
    assert kb.KnowledgeBase(db, Dataset.resolve("movies")).add("A new idea for the list.").id == h.id + 1


def test_undo_refuses_when_rows_were_changed_outside(db):
    kb.KnowledgeBase(db, Dataset.resolve("games")).add("Prefer co-op games.")
    db.execute("UPDATE hints SET text='tampered' WHERE dataset='games' AND id=21")
    with pytest.raises(UserError, match="changed since"):
        kb.KnowledgeBase(db, Dataset.resolve("games")).undo()


# --------------------------------------------------------------------------- search

def test_full_text_search_follows_changes(db):
    found = kb.KnowledgeBase(db, Dataset.resolve("games")).search("consoles")
    assert {h.id for h, _ in found} == {4, 18}
    assert all("\x02consoles\x03" in snip.lower() for _, snip in found)
    assert {h.id for h, _ in kb.KnowledgeBase(db, Dataset.resolve("games")).search("multiplay")} == {15}  # prefix on last word
    assert kb.KnowledgeBase(db, Dataset.resolve("games")).search("consoles", status="candidate") == []
    kb.KnowledgeBase(db, Dataset.resolve("games")).edit(15, "Include games with strong co-op components.")
    assert kb.KnowledgeBase(db, Dataset.resolve("games")).search("multiplayer") == []
    assert {h.id for h, _ in kb.KnowledgeBase(db, Dataset.resolve("games")).search("co-op")} == {15}
    kb.KnowledgeBase(db, Dataset.resolve("games")).delete([15])
    assert kb.KnowledgeBase(db, Dataset.resolve("games")).search("co-op") == []
    kb.KnowledgeBase(db, Dataset.resolve("games")).undo()
    assert {h.id for h, _ in kb.KnowledgeBase(db, Dataset.resolve("games")).search("co-op")} == {15}
    # punctuation in a plain query is harmless; bad FTS syntax is a one-line error
    assert kb.KnowledgeBase(db, Dataset.resolve("games")).search('user\'s "history') is not None
    with pytest.raises(UserError, match="bad search query"):
        kb.KnowledgeBase(db, Dataset.resolve("games")).search('"unbalanced', raw=True)
    with pytest.raises(UserError, match="empty"):
        kb.KnowledgeBase(db, Dataset.resolve("games")).search("   ")


# --------------------------------------------------------------------------- hints.json

@pytest.mark.parametrize("dataset", ["games", "movies"])
def test_export_import_round_trip_equals_release_file(db, dataset, data_dir, tmp_path):
    release = (data_dir / FOLDER[dataset] / "hints.json").read_bytes()
    out = tmp_path / "hints.json"
    assert kb.KnowledgeBase(db, Dataset.resolve(dataset)).export(out) == 20
    assert out.read_bytes() == release

    # a KB emptied, then filled by importing the exported file, exports the same bytes
    kb.KnowledgeBase(db, Dataset.resolve(dataset)).delete(list(range(1, 21)))
    assert json.loads(kb.KnowledgeBase(db, Dataset.resolve(dataset)).export_text()) == [""]
    report = kb.KnowledgeBase(db, Dataset.resolve(dataset)).import_file(out)
    assert len(report.added) == 20 and report.skipped == []
    assert report.added == list(range(21, 41))
    again = tmp_path / "again.json"
    kb.KnowledgeBase(db, Dataset.resolve(dataset)).export(again)
    assert again.read_bytes() == release

    # importing it a second time skips every entry and says why
    report = kb.KnowledgeBase(db, Dataset.resolve(dataset)).import_file(out)
    assert report.added == [] and len(report.skipped) == 20
    assert all(why.startswith("duplicate of #") for _, why in report.skipped)


def test_export_writes_edited_text_and_only_accepted(db):
    kb.KnowledgeBase(db, Dataset.resolve("movies")).edit(1, "Consider the release years in the user's history.")
    kb.KnowledgeBase(db, Dataset.resolve("movies")).reject([2])
    kb.KnowledgeBase(db, Dataset.resolve("movies")).add("A candidate hint stays out of the export.")
    data = json.loads(kb.KnowledgeBase(db, Dataset.resolve("movies")).export_text())
    assert data[0] == "" and len(data) == 20
    assert data[1] == "Consider the release years in the user's history."
    assert not any("candidate hint" in t for t in data)


def test_import_skips_duplicates_within_the_file_and_case_variants(db, tmp_path):
    f = tmp_path / "h.json"
    f.write_text(json.dumps(["", "Try the studio's other games.", "try the studio's other games",
                             "INCLUDE GAMES THAT HAVE WON CRITICAL ACCLAIM OR AWARDS", "  "]))
    report = kb.KnowledgeBase(db, Dataset.resolve("games")).import_file(f, status="candidate")
    assert len(report.added) == 1
    assert kb.KnowledgeBase(db, Dataset.resolve("games")).get(report.added[0]).status == "candidate"
    reasons = [why for _, why in report.skipped]
    assert reasons == ["repeats entry 1 of the file", "duplicate of #20 (accepted)"]


def test_import_of_thousands_skips_every_duplicate_and_undoes(db, tmp_path):
    """The indexed import gives what the one-by-one check gave: in-file repeats and
    variants of existing hints (any status, case, spacing, final stop) skipped and reported."""
    import random

    rng = random.Random(7)
    kb.KnowledgeBase(db, Dataset.resolve("games")).reject([5])
    rejected = kb.KnowledgeBase(db, Dataset.resolve("games")).get(5).text
    entries = [""]
    for i in range(3000):
        r = rng.random()
        if r < 0.05 and len(entries) > 1:
            entries.append(rng.choice(entries[1:]).upper())           # repeats an earlier entry
        elif r < 0.08:
            entries.append("  " + kb.KnowledgeBase(db, Dataset.resolve("games")).get(rng.randint(1, 20)).text.rstrip(".") + "!")
        elif r < 0.09:
            entries.append(rejected.lower())                          # a rejected hint counts too
        else:
            entries.append(f"Prefer candidates sharing trait {i} with the last purchase.")
    f = tmp_path / "many.json"
    f.write_text(json.dumps(entries))
    before = snapshot(db)
    report = kb.KnowledgeBase(db, Dataset.resolve("games")).import_file(f, status="candidate")

    # reference: the same decisions taken one entry at a time against the stored texts
    existing = {kb.text_key(h.text): h for h in kb.KnowledgeBase(db, Dataset.resolve("games")).hints()
                if h.id not in report.added}
    seen, added, skipped = {}, 0, []
    for i, e in enumerate(entries):
        if not e.strip():
            continue
        key = kb.text_key(e)
        if key in seen:
            skipped.append(f"repeats entry {seen[key]} of the file")
            continue
        seen[key] = i
        if key in existing:
            h = existing[key]
            skipped.append(f"duplicate of #{h.id} ({h.status})")
            continue
        added += 1
    assert len(report.added) == added and [why for _, why in report.skipped] == skipped
    assert any("(rejected)" in why for why in skipped) and any("repeats" in why for why in skipped)
    assert report.added == list(range(21, 21 + added))
    hints = kb.KnowledgeBase(db, Dataset.resolve("games")).hints()
    assert len({kb.text_key(h.text) for h in hints}) == len(hints) == 20 + added
    last = kb.KnowledgeBase(db, Dataset.resolve("games")).history(limit=1)[0]
    assert last["action"] == "import" and last["hint_ids"] == report.added
    kb.KnowledgeBase(db, Dataset.resolve("games")).undo()
    assert snapshot(db) == before
    # the next import after the undo does not reuse the ids of the undone one
    again = kb.KnowledgeBase(db, Dataset.resolve("games")).import_file(f)
    assert again.added[0] == 21 + added


@pytest.mark.parametrize("raw, stored", [
    ("before\x00after, the rest", "beforeafter, the rest"),
    ("\x1b]0;pwned\x07 Prefer \x1b[31mred\x1b[0m covers.", "]0;pwned Prefer [31mred[0m covers."),
    ("C1 \x9b controls \x85 and DEL \x7f go", "C1 controls and DEL go"),
    ("tabs\tand\nnewlines\r\ncollapse", "tabs and newlines collapse"),
])
def test_control_characters_never_enter_the_kb(db, tmp_path, raw, stored):
    """A NUL no longer cuts a hint (SQLite's FTS and C strings stop at it) and no escape
    sequence is stored; the same normalisation for add, edit, merge and import."""
    h = kb.KnowledgeBase(db, Dataset.resolve("games")).add(raw)
    assert h.text == stored
    assert not any(ord(c) < 32 or 0x7f <= ord(c) <= 0x9f for c in h.text)
    last_word = stored.split()[-1].strip(".,")
    assert any(x.id == h.id for x, _ in kb.KnowledgeBase(db, Dataset.resolve("games")).search(last_word))
    kb.KnowledgeBase(db, Dataset.resolve("games")).delete([h.id])
    assert kb.KnowledgeBase(db, Dataset.resolve("games")).edit(3, raw).text == stored
    kb.KnowledgeBase(db, Dataset.resolve("games")).undo()
    f = tmp_path / "ctl.json"
    f.write_text(json.dumps(["", raw, "\x00\x1b"]))
    report = kb.KnowledgeBase(db, Dataset.resolve("games")).import_file(f)
    assert kb.KnowledgeBase(db, Dataset.resolve("games")).get(report.added[0]).text == stored
    assert report.skipped == [("\x00\x1b", "empty once spaces and control characters are removed")]
    # export keeps the file's exact string; importing it again finds the duplicate
    exported = json.loads(kb.KnowledgeBase(db, Dataset.resolve("games")).export_text())
    assert raw in exported
    assert kb.KnowledgeBase(db, Dataset.resolve("games")).find_duplicate(raw).id == report.added[0]


# --------------------------------------------------------------------------- bad input

BAD_FILES = {
    "not json": "this is not json",
    "truncated": '["", "Consider',
    "an object": '{"hints": ["a"]}',
    "numbers": '["", 3, 4]',
    "empty": "",
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_malformed_import_file_is_one_line_error_and_kb_unchanged(db, tmp_path, name):
    before = snapshot(db)
    f = tmp_path / "bad.json"
    f.write_text(BAD_FILES[name])
    with pytest.raises(UserError) as err:
        kb.KnowledgeBase(db, Dataset.resolve("games")).import_file(f)
    assert "\n" not in str(err.value) and str(f) in str(err.value)
    assert snapshot(db) == before


def test_import_missing_file_or_directory(db, tmp_path):
    with pytest.raises(UserError, match="not found"):
        kb.KnowledgeBase(db, Dataset.resolve("games")).import_file(tmp_path / "nope.json")
    with pytest.raises(UserError, match="directory"):
        kb.KnowledgeBase(db, Dataset.resolve("games")).import_file(tmp_path)


@pytest.mark.parametrize("call, message", [
    (lambda db: kb.KnowledgeBase(db, Dataset.resolve("games")).get(99), "no hint #99"),
    (lambda db: kb.KnowledgeBase(db, Dataset.resolve("games")).edit(99, "x y z"), "no hint #99"),
    (lambda db: kb.KnowledgeBase(db, Dataset.resolve("games")).accept([3, 99]), "no hint #99"),
    (lambda db: kb.KnowledgeBase(db, Dataset.resolve("games")).delete([1, 99]), "no hint #99"),
    (lambda db: kb.KnowledgeBase(db, Dataset.resolve("games")).merge(1, [2, 99]), "no hint #99"),
    (lambda db: kb.KnowledgeBase(db, Dataset.resolve("games")).merge(1, [1]), "into itself"),
    (lambda db: kb.KnowledgeBase(db, Dataset.resolve("games")).edit(0, "x"), "no hint"),
    (lambda db: kb.KnowledgeBase(db, Dataset.resolve("games")).edit("abc", "x"), "must be a number"),
    (lambda db: kb.KnowledgeBase(db, Dataset.resolve("games")).add(""), "empty"),
    (lambda db: kb.KnowledgeBase(db, Dataset.resolve("games")).add(" \t\n "), "empty"),
    (lambda db: kb.KnowledgeBase(db, Dataset.resolve("games")).edit(3, "   "), "empty"),
    (lambda db: kb.KnowledgeBase(db, Dataset.resolve("games")).add("x" * 2000), "too long"),
    (lambda db: kb.KnowledgeBase(db, Dataset.resolve("games")).add("include games that have won critical acclaim or awards"),
     "already in the KB as #20"),
    (lambda db: kb.KnowledgeBase(db, Dataset.resolve("games")).edit(3, kb.KnowledgeBase(db, Dataset.resolve("games")).get(4).text), "as #4"),
    (lambda db: kb.KnowledgeBase(db, Dataset.resolve("games")).hints("pending"), "unknown status"),
    (lambda db: kb.KnowledgeBase(db, Dataset.resolve("books")).hints(), "unknown dataset"),
])
def test_bad_input_is_a_one_line_error_and_changes_nothing(db, call, message):
    before = snapshot(db)
    with pytest.raises(UserError, match=message) as err:
        call(db)
    assert "\n" not in str(err.value)
    assert snapshot(db) == before
    assert [e["action"] for e in kb.KnowledgeBase(db, Dataset.resolve("games")).history()] == ["seed"]


def test_stale_edit_is_refused(db):
    seen = kb.KnowledgeBase(db, Dataset.resolve("games")).get(6).text
    kb.KnowledgeBase(db, Dataset.resolve("games")).edit(6, "Look for immersive survival games.")
    before = snapshot(db)
    with pytest.raises(UserError, match="changed meanwhile"):
        kb.KnowledgeBase(db, Dataset.resolve("games")).edit(6, "Look for tense survival horror.", expect_text=seen)
    assert snapshot(db) == before


HOLD_LOCK = textwrap.dedent("""
    import sqlite3, sys, time
    c = sqlite3.connect(sys.argv[1], isolation_level=None)
    c.execute("BEGIN IMMEDIATE")
    c.execute("UPDATE hints SET note='held' WHERE id=-1")
    print("locked", flush=True)
    sys.stdin.readline()
    c.execute("ROLLBACK")
""")


def test_lock_held_by_another_process(db, workspace, monkeypatch, run_cli):
    kb.KnowledgeBase(db, Dataset.resolve("games")).hints()
    before = snapshot(db)
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(workspace)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        db.execute("PRAGMA busy_timeout=200")
        with pytest.raises(WorkspaceError, match="another process holds the lock"):
            kb.KnowledgeBase(db, Dataset.resolve("games")).edit(3, "Ensure the list suits all ages.")
        monkeypatch.setattr("re2llm_tui.store.workspace.BUSY_TIMEOUT_MS", 200)
        code, out, err = run_cli("kb", "add", "Prefer racing games.", "-d", "games",
                                 "--db", workspace)
        assert code == 2
        assert err.startswith("re2llm-tui: error: ") and err.count("\n") == 1
        assert "lock" in err
    finally:
        holder.stdin.write("\n")
        holder.stdin.flush()
        holder.wait(timeout=10)
    assert snapshot(db) == before
    kb.KnowledgeBase(db, Dataset.resolve("games")).edit(3, "Ensure the list suits all ages.")  # works once released


# --------------------------------------------------------------------------- CLI

def test_cli_curation_flow(run_cli, workspace, data_dir, tmp_path):
    base = ("-d", "movies", "--db", workspace, "--data-dir", data_dir)
    code, out, _ = run_cli("kb", "add", "Mind the [bold]mood[/bold] of the last films.",
                           "--status", "candidate", *base)
    assert code == 0 and "added #21 (candidate)" in out
    code, out, _ = run_cli("kb", "list", "--status", "candidate", *base)
    assert code == 0 and "[bold]mood[/bold]" in out, "hint text is printed verbatim, not as markup"
    code, out, _ = run_cli("kb", "list", "--json", *base)
    listed = json.loads(out)
    assert len(listed) == 21 and listed[-1]["status"] == "candidate"
    code, out, _ = run_cli("kb", "accept", "21", *base)
    assert code == 0 and "accepted #21" in out
    code, out, _ = run_cli("kb", "search", "mood", *base)
    assert code == 0 and "21" in out and "16" in out
    code, out, _ = run_cli("kb", "show", "21", *base)
    assert code == 0 and "accept" in out and "add" in out
    code, out, _ = run_cli("kb", "history", *base)
    assert out.splitlines()[0].split()[2] == "accept:"
    code, out, _ = run_cli("kb", "undo", *base)
    assert code == 0 and "undid" in out
    assert json.loads(run_cli("kb", "list", "--json", *base)[1])[-1]["status"] == "candidate"
    exported = tmp_path / "out.json"
    code, _, err = run_cli("kb", "export", exported, *base)
    assert code == 0 and exported.read_bytes() == (data_dir / "movie" / "hints.json").read_bytes()
    code, out, _ = run_cli("kb", "import", exported, *base)
    assert code == 0 and "imported 0 hints, skipped 20" in out


@pytest.mark.parametrize("args, message", [
    (("kb", "show", "77"), "no hint #77"),
    (("kb", "add", "   "), "hint text is empty"),
    (("kb", "edit", "3", ""), "hint text is empty"),
    (("kb", "rm", "5", "77"), "no hint #77"),
    (("kb", "import", "{missing}"), "file not found"),
    (("kb", "list", "--status", "maybe"), "unknown status"),
])
def test_cli_bad_input_exit_2_one_line(run_cli, workspace, data_dir, args, message, tmp_path):
    args = tuple(a.format(missing=tmp_path / "missing.json") for a in args)
    base = ("-d", "games", "--db", workspace, "--data-dir", data_dir)
    run_cli("kb", "list", *base)
    db = open_workspace(workspace)
    before = snapshot(db)
    code, out, err = run_cli(*args, *base)
    assert code == 2, (out, err)
    assert err.startswith("re2llm-tui: error: ") and err.count("\n") == 1 and message in err
    assert snapshot(db) == before


def test_a_non_default_data_folder_seeds_its_own_hints(tmp_path, workspace, data_dir):
    """Sessions carry the release folder they came from: the KB of a session read from
    another --data-dir is seeded from that folder's hints.json (it used the default)."""
    import shutil

    from re2llm_tui.data.dataset import Dataset

    from re2llm_tui.data.release import load_release_hints

    copy = tmp_path / "release"
    shutil.copytree(data_dir / "game", copy / "game")
    hints = json.loads((copy / "game" / "hints.json").read_text())
    (copy / "game" / "hints.json").write_text(json.dumps(hints[:4]))
    ds = Dataset.resolve("games", copy)
    session = ds.sessions("train")[0]
    assert session.root == str(copy)
    db = open_workspace(workspace)
    kb.KnowledgeBase(db, ds)  # seeds the KB
    assert [h.id for h in kb.KnowledgeBase(db, Dataset.resolve("games", data_dir)).hints()] \
        == [1, 2, 3]
    assert len(load_release_hints("games", data_dir)) > 4


def test_hint_text_gives_entry_0_one_meaning(db):
    """The one hint lookup: no id and entry 0 (the agent's "no hint" action) append
    nothing; an id gives its text; an unknown id is a one-line error naming it."""
    k = kb.KnowledgeBase(db, Dataset.resolve("games"))
    first = k.hints("accepted")[0]
    assert k.hint_text(None) is None and k.hint_text(0) is None and k.hint_text("0") is None
    assert k.hint_text(first.id) == first.text
    assert k.actions()[1][0] == (0, "")                 # the same entry 0 the agent has
    with pytest.raises(UserError, match="no hint #999"):
        k.hint_text(999)
    with pytest.raises(UserError, match="must be a number"):
        k.hint_text("three")
