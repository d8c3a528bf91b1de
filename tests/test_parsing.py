"""Parsing free-text LLM replies into ranked candidate lists."""

from __future__ import annotations

import random
import string

from re2llm_tui.llm.parsing import parse_ranking

CANDS = ["Toy Story", "Fast & Furious: Showdown - Nintendo 3DS", "The Addams Family",
         "Halo 3 - Xbox 360", "Alien", "Aliens", "Up", "Gran Torino",
         "Universal PC/Stereo Gaming Headset - Yapster TM-YB100A8211; Black"]


def test_numbered_bulleted_bold_quoted_lines():
    reply = ("Here are my recommendations:\n"
             "1. **The Addams Family**\n"
             "2) \"Toy Story\"\n"
             "- Gran Torino (2008)\n"
             "* Halo 3 - Xbox 360.\n"
             "5. Fast &amp; Furious: Showdown - Nintendo 3DS\n")
    p = parse_ranking(reply, CANDS)
    assert p.ranking == [2, 0, 7, 3, 1]
    assert p.hallucinations == []


def test_trailing_platform_or_year_and_near_misses_match():
    p = parse_ranking("1. Halo 3 (Xbox 360)\n2. Gran Torino - 2008 drama\n3. The Adams Family",
                      CANDS)
    assert p.ranking[:1] == [3]
    assert 2 in p.ranking


def test_duplicates_dropped_and_hallucinations_kept():
    p = parse_ranking("1. Alien\n2. Alien\n3. Star Wars\n4. Aliens\n5. alien", CANDS)
    assert p.ranking == [4, 5]
    assert p.duplicates == 2
    assert p.hallucinations == ["Star Wars"]


def test_short_titles_do_not_fuzzy_match_others():
    p = parse_ranking("1. Upside\n2. Ali", CANDS)
    assert p.ranking == []


def test_title_with_semicolon_and_single_line_lists():
    p = parse_ranking("1. Universal PC/Stereo Gaming Headset - Yapster TM-YB100A8211; Black", CANDS)
    assert p.ranking == [8]
    p = parse_ranking("Toy Story; Alien; Up", CANDS)
    assert p.ranking == [0, 4, 6]


def test_k_limits_the_ranking():
    reply = "\n".join(f"{i + 1}. {c}" for i, c in enumerate(CANDS))
    assert len(parse_ranking(reply, CANDS, k=3).ranking) == 3


def test_never_crashes_on_any_string():
    rng = random.Random(0)
    alphabet = string.printable + "\x00\ufffd&;#*-•“”"
    for _ in range(300):
        s = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 300)))
        p = parse_ranking(s, CANDS)
        assert len(set(p.ranking)) == len(p.ranking) <= 10
    assert parse_ranking(None, CANDS).ranking == []  # type: ignore[arg-type]
    assert parse_ranking("", []).ranking == []
