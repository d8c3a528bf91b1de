"""Import recorded LLM outputs in the release's text format and score them.

The release's ``example_*_base.txt`` files hold one block per session, in the order of the
split's text JSON::

    Label:<target title>
    Output: 1. <title>
    2. <title>
    ...

Blocks are separated by blank lines.  Files were written in ISO-8859-1 by the release, so
UTF-8 is tried first, then latin-1.  Every label is checked against the session's target: a
mismatch is reported and the block is not scored.  A file with more or fewer blocks than
the split has sessions is refused before anything is written.

The target's rank is counted by :func:`~re2llm_tui.llm.parsing.target_rank` (``rank_by``:
reply positions by default, ``candidates`` for the matched-only rank); the summary also
reports the replies' validity (:func:`~re2llm_tui.evaluation.metrics.summarize`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from re2llm_tui.data.dataset import Dataset, require

from re2llm_tui.data.release import Session, unescape
from re2llm_tui.errors import DataError
from re2llm_tui.evaluation.metrics import summarize
from re2llm_tui.llm.parsing import (
    DEFAULT_RANK_BY,
    check_rank_by,
    normalize,
    parse_ranking,
    target_rank,
)
from re2llm_tui.safe_files import read_input

_LABEL = re.compile(r"^\s*Label\s*:\s?(?P<label>.*)$")
_OUTPUT = re.compile(r"^\s*Output\s*:\s?(?P<rest>.*)$")


@dataclass
class OutputBlock:
    label: str
    output: str


@dataclass
class ScoredImport:
    run_id: int | None
    n_blocks: int
    ranks: list[int | None]
    mismatches: list[tuple[str, str, str]] = field(default_factory=list)  # (id, label, target)
    hallucinations: int = 0
    summary: dict = field(default_factory=dict)
    encoding: str = "utf-8"
    dataset: str = ""
    split: str = ""
    path: str = ""
    items: list = field(default_factory=list)  # (session, block, parsed, rank, label_ok)
    rank_by: str = DEFAULT_RANK_BY


def read_text(path: Path) -> tuple[str, str]:
    raw = read_input(path)
    if b"\x00" in raw:
        raise DataError(f"{path}: binary data, not a recorded-output text file")
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return raw.decode("latin-1"), "iso-8859-1"


def parse_output_file(path: Path) -> tuple[list[OutputBlock], str]:
    """Blocks of a recorded-output file; each starts at a ``Label:`` line."""
    text, encoding = read_text(path)
    blocks: list[OutputBlock] = []
    label: str | None = None
    out_lines: list[str] = []
    seen_output = False
    for lineno, line in enumerate(text.splitlines(), 1):
        m = _LABEL.match(line)
        if m:
            if label is not None:
                blocks.append(OutputBlock(label, "\n".join(out_lines).strip()))
            label, out_lines, seen_output = m.group("label").strip(), [], False
            continue
        if label is None:
            if line.strip():
                raise DataError(f"{path}: line {lineno}: expected 'Label:<title>' to start a block")
            continue
        m = _OUTPUT.match(line)
        if m and not seen_output:
            seen_output = True
            out_lines.append(m.group("rest"))
        else:
            out_lines.append(line)
    if label is not None:
        blocks.append(OutputBlock(label, "\n".join(out_lines).strip()))
    if not blocks:
        raise DataError(f"{path}: no 'Label:' blocks found (not a recorded-output file)")
    return blocks, encoding


def labels_match(label: str, session: Session) -> bool:
    return normalize(unescape(label)) == normalize(session.target)


def score_file(path: Path, ds: Dataset, split: str,
               rank_by: str = DEFAULT_RANK_BY) -> ScoredImport:
    """Parse, check and score a recorded-output file (nothing is written); ``rank_by``: see
    :func:`~re2llm_tui.llm.parsing.target_rank`."""
    rank_by = check_rank_by(rank_by)
    ds = require(ds)
    dataset = ds.name
    sessions = ds.sessions(split)
    blocks, encoding = parse_output_file(Path(path))
    if len(blocks) != len(sessions):
        raise DataError(f"{path}: {len(blocks)} output blocks but {dataset}/{split} has "
                        f"{len(sessions)} sessions (blocks must follow the text JSON's order)")
    result = ScoredImport(run_id=None, n_blocks=len(blocks), ranks=[], encoding=encoding,
                          dataset=sessions[0].domain, split=split, path=str(Path(path).resolve()),
                          rank_by=rank_by)
    replies = []
    for session, block in zip(sessions, blocks):
        parsed = parse_ranking(block.output, session.candidates)
        ok = labels_match(block.label, session)
        rank = target_rank(parsed, session.target_index, rank_by) if ok else None
        if ok:
            result.ranks.append(rank)
            replies.append(parsed)
        else:
            result.mismatches.append((session.id, block.label, session.target))
        result.hallucinations += len(parsed.hallucinations)
        result.items.append((session, block, parsed, rank, ok))
    result.summary = summarize(result.ranks, replies=replies)
    return result


def store_import(db, result: ScoredImport, *, run_name: str | None = None,
                 model: str | None = None) -> int:
    """Store a scored import as a ``score`` run in one transaction; returns the run id."""
    from re2llm_tui.prompts import RECOMMEND_VERSION
    from re2llm_tui.store import runs
    from re2llm_tui.store.workspace import transaction

    with transaction(db):
        run_id = runs.create_run(
            db, name=run_name or f"score:{Path(result.path).name}", kind="score",
            dataset=result.dataset, split=result.split, model=model,
            prompt_version=RECOMMEND_VERSION,
            params={"file": result.path, "encoding": result.encoding,
                    "mismatches": len(result.mismatches), "rank_by": result.rank_by})
        for session, block, parsed, rank, ok in result.items:
            runs.add_run_item(db, run_id, session.id, prompt=session.prompt,
                              reply=block.output, ranking=parsed.ranking,
                              hallucinations=parsed.hallucinations, target_rank=rank,
                              label_ok=int(ok),
                              error=None if ok else f"label mismatch: {block.label!r}")
        runs.finish_run(db, run_id, result.summary)
    result.run_id = run_id
    return run_id


def format_output_file(blocks: list[tuple[str, str]]) -> str:
    """Render (label, reply) pairs in the release's recorded-output format."""
    return "\n\n".join(f"Label:{label}\nOutput: {reply.strip()}" for label, reply in blocks) + "\n"
