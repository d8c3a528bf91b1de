"""The release data and every quirk its README lists, on the real files."""

from __future__ import annotations

import json
import pickle

import pytest

from re2llm_tui.data import release as ds
from re2llm_tui.data.safe_pickle import load_id_sessions_pickle, restricted_loads
from re2llm_tui.errors import DataError


@pytest.mark.parametrize("domain,alias", [("games", "game"), ("movies", "movie")])
def test_both_domains_both_splits_load_with_aliases(data_dir, domain, alias):
    for split, n in (("train", 500), ("test", 100)):
        a = ds.load_sessions(domain, split, data_dir)
        b = ds.load_sessions(alias, split, data_dir)
        assert len(a) == n and a == b
        assert len({s.id for s in a}) == n
        assert all(s.domain == domain and s.split == split for s in a)


@pytest.mark.parametrize("domain", ["games", "movies"])
def test_every_prompt_yields_50_candidates_with_the_label(data_dir, domain):
    for split in ds.SPLITS:
        raw = json.loads((ds.find_data_dir(domain, data_dir) /
                          f"example_{split}_text.json").read_text())
        for s, row in zip(ds.load_sessions(domain, split, data_dir), raw):
            assert len(s.candidates) == 50
            assert s.candidates[s.target_index] == s.target == ds.unescape(row["label"])
            assert len(s.history) >= 1 and all(h.strip() for h in s.history)


def test_entity_semicolons_do_not_split_titles(data_dir):
    # "Fast &amp; Furious" contains "; " once encoded: a naive split yields 51..59 pieces
    raw = json.loads((ds.find_data_dir("games", data_dir) / "example_train_text.json").read_text())
    naive = [len(ds.parse_prompt(r["prompt"])[1].split("; ")) for r in raw]
    assert max(naive) > 50  # the quirk is really in the data
    titles = {c for s in ds.load_sessions("games", "train", data_dir) for c in s.candidates}
    assert not any("&amp;" in t or "&reg;" in t or "&quot;" in t for t in titles)
    assert any("&" in t for t in titles)  # decoded ampersands are kept
    assert any("®" in t or "™" in t for t in titles)


def test_titles_that_contain_semicolon_space_stay_whole(data_dir):
    known = "Universal PC/Stereo Gaming Headset - Yapster TM-YB100A8211; Black"
    cands = [c for sp in ds.SPLITS for s in ds.load_sessions("games", sp, data_dir)
             for c in s.candidates]
    assert known in cands
    assert "Black" not in cands


def test_segment_prefers_known_titles_and_forces_the_label():
    pieces = ["A", "B", "Title; With Semicolon", "C"]
    parts = ds.split_pieces("A; B; Title; With Semicolon; C")
    assert parts == ["A", "B", "Title", "With Semicolon", "C"]
    out = ds.segment(parts, frozenset({"Title; With Semicolon"}), n_groups=4)
    assert out == pieces
    out = ds.segment(["X", "Y", "Z"], frozenset(), n_groups=2, must="Y; Z")
    assert out == ["X", "Y; Z"]


def test_both_prompt_layouts_parse(data_dir):
    prompts = [s.prompt for d in ("games", "movies") for sp in ds.SPLITS
               for s in ds.load_sessions(d, sp, data_dir)]
    spaced = [p for p in prompts if ". Please recommend" in p]
    tight = [p for p in prompts if ".Please recommend" in p]
    assert spaced and tight  # both layouts really occur, and both parse
    assert all(s.startswith("I watched") for s in tight)  # the movie quirk
    for p in spaced[:5] + tight[:5]:
        hist, cand = ds.parse_prompt(p)
        assert hist and cand and "Please" not in cand


def test_malformed_prompt_is_a_data_error():
    with pytest.raises(DataError, match="release layout"):
        ds.parse_prompt("recommend something nice")


def test_pickles_read_through_restricted_unpickler(data_dir):
    for folder, n_test in (("game", 100), ("movie", 4790)):
        rows = load_id_sessions_pickle(data_dir / folder / "example_test.txt")
        assert len(rows) == n_test
        hist, target, cands = rows[0]
        assert len(cands) == 50 and target in cands and all(isinstance(i, int) for i in hist)


class _Evil:
    def __reduce__(self):
        import os
        return (os.system, ("touch /tmp/re2llm-pwned",))


def test_hostile_pickle_is_refused_and_nothing_executes(tmp_path):
    marker = tmp_path / "pwned"
    evil = pickle.dumps([([1], 2, [3] * 50), _Evil()])
    path = tmp_path / "example_test.txt"
    path.write_bytes(evil.replace(b"/tmp/re2llm-pwned", str(marker).encode().ljust(17)[:17])
                     if len(str(marker)) <= 17 else evil)
    with pytest.raises(DataError, match="not a safe session pickle"):
        load_id_sessions_pickle(path)
    assert not marker.exists()
    with pytest.raises(pickle.UnpicklingError):
        restricted_loads(pickle.dumps({"a": 1}) + b"")  # dict is built, then rejected
    with pytest.raises(pickle.UnpicklingError):
        restricted_loads(pickle.dumps([True]))


@pytest.mark.parametrize("content,match", [
    (b"", "empty"), (b"not a pickle at all", "not a safe session pickle"),
    (pickle.dumps([([1], 2, [3, 4])]), "candidate_ids"),
])
def test_bad_pickles_get_clear_errors(tmp_path, content, match):
    p = tmp_path / "x.txt"
    p.write_bytes(content)
    with pytest.raises(DataError, match=match):
        load_id_sessions_pickle(p)


def test_text_json_is_the_source_not_the_pickles(data_dir):
    """Pickles and text JSON differ in size and the game ids mostly lack titles."""
    import json as _json

    movie_test = load_id_sessions_pickle(data_dir / "movie" / "example_test.txt")
    assert len(movie_test) != len(ds.load_sessions("movies", "test", data_dir))
    n2t = _json.loads((data_dir / "game" / "num_to_title.json").read_text())
    game = load_id_sessions_pickle(data_dir / "game" / "example_train.txt")
    ids = [i for h, t, c in game for i in (*h, t, *c)]
    assert sum(str(i) in n2t for i in ids) < 0.5 * len(ids)  # ids can't give titles
    sessions = ds.load_sessions("games", "train", data_dir)
    raw = _json.loads((data_dir / "game" / "example_train_text.json").read_text())
    assert [s.prompt for s in sessions] == [r["prompt"] for r in raw]


@pytest.mark.parametrize("content,match", [
    ("", "empty"), ("[{\"prompt\": \"x\"", "invalid JSON"), ("{\"a\": 1}", "JSON list"),
    ("[{\"prompt\": 1, \"label\": \"x\"}]", "string 'prompt'"),
])
def test_bad_text_json_gets_one_line_errors(tmp_path, content, match):
    p = tmp_path / "example_train_text.json"
    p.write_text(content)
    with pytest.raises(DataError, match=match) as info:
        ds.read_text_json(p)
    assert "\n" not in str(info.value) and str(p) in str(info.value)


def test_binary_garbage_json(tmp_path):
    p = tmp_path / "g.json"
    p.write_bytes(b"\x00\xff\xfe garbage")
    with pytest.raises(DataError, match="not UTF-8|invalid JSON"):
        ds.read_text_json(p)


def test_missing_dataset_says_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.setenv("RE2LLM_DATA", str(tmp_path / "env-dir"))
    monkeypatch.setattr(ds, "PROJECT_ROOT", tmp_path / "project")
    with pytest.raises(DataError, match="looked in") as info:
        ds.find_data_dir("games")
    msg = str(info.value)
    assert "env-dir" in msg and "shared/datasets/re2llm-release" in msg
    assert "data/re2llm-release" in msg and "\n" not in msg
    with pytest.raises(DataError, match="--data-dir"):
        ds.find_data_dir("games", tmp_path / "explicit")


def test_explicit_data_dir_env_and_unknown_domain(data_dir, monkeypatch):
    monkeypatch.setenv("RE2LLM_DATA", str(data_dir))
    assert ds.find_data_dir("movie") == data_dir / "movie"
    assert ds.find_data_dir("games", data_dir / "game") == data_dir / "game"
    with pytest.raises(DataError, match="unknown dataset"):
        ds.canonical_domain("books")


def test_release_hints_decoded(data_dir):
    hints = ds.load_release_hints("movies", data_dir)
    assert hints[0] == "" and len(hints) == 21
    assert not any("&#39;" in h for h in hints) and any("user's" in h for h in hints)
