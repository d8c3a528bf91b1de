"""Reflective Exploration (Re2LLM, Sec. "Reflective Exploration Module").

For a session the LLM misses (the target is not in its top ``miss_k``), a four-turn
conversation with the same LLM:

1. the recommendation itself (a stored baseline reply is reused when the workspace has one);
2. "none of these is the target: infer the possible mistakes";
3. "the correct answer is <target>: analyse from several aspects why it was missed";
4. "give short imperative hints for trying again, without revealing the target".

Each hint parsed from turn 4 then passes, cheapest first:

* **leak check** (:func:`leak_of`): the hint must not name the target or a distinctive part
  of its title;
* **duplicate**: not the text of a hint already in the KB (any status, so a hint a person
  rejected does not come back);
* **non-redundancy, embeddings**: cosine similarity (all-MiniLM-L6-v2) to every accepted or
  candidate hint below ``sim_threshold``; the most similar hint is recorded as provenance;
* **effectiveness**: the original prompt with the hint appended is ranked again; the hint
  is kept if the target enters the top ``effect_k`` (``effect_mode="enter"``) or, with
  ``effect_mode="improve"``, if NDCG@``effect_k`` improves; both ranks and NDCGs are stored;
* **non-redundancy, as the paper**: the LLM is asked whether the hint conveys an idea
  similar to one of the existing hints (the ``llm_compare_n`` most similar by embedding).

Survivors become ``candidate`` hints (``accepted`` with ``auto_accept``).  Every message of
every conversation (the four turns, each effectiveness re-ask, each redundancy question) is
stored in ``reflection_turns``; every proposed hint and the outcome of each check in
``reflection_hints``; the hints added point back to their reflection and session.

:func:`explore` runs this over a split, resumably (sessions already reflected, or already
hit by the baseline, with the same model and prompt version are skipped), and stops cleanly
when the client raises :class:`~re2llm_tui.llm.client.BudgetExceeded`.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from typing import Callable, Sequence

from re2llm_tui.data.release import Dataset, Session, canonical_domain, unescape
from re2llm_tui.errors import UserError
from re2llm_tui.evaluation.metrics import ndcg_at, rank_of
from re2llm_tui.kb import store as kb
from re2llm_tui.prompts import (
    REFLECTION_VERSION,
    recommend_prompt,
    redundancy_prompt,
    reflection_analysis_prompt,
    reflection_hints_prompt,
    reflection_mistakes_prompt,
)
from re2llm_tui.store.reflections import reflections_of  # noqa: F401 - re-exported reader

EFFECT_MODES = ("enter", "improve")
_NOW = "strftime('%Y-%m-%dT%H:%M:%fZ','now')"


@dataclass
class ReflectConfig:
    """Knobs of Reflective Exploration (stored with each reflection)."""

    #: a session is reflected on when its target is not in the baseline's top ``miss_k``
    miss_k: int = 10
    #: a hint is effective when, with it, the target enters the top ``effect_k`` ...
    effect_k: int = 10
    #: ... ("enter"), or when NDCG@effect_k improves ("improve")
    effect_mode: str = "enter"
    #: cosine similarity at or above which a hint is redundant with an existing one
    sim_threshold: float = 0.8
    #: also ask the LLM whether the hint conveys an existing idea (the paper's check)
    llm_redundancy: bool = True
    #: how many of the most similar existing hints the LLM is shown
    llm_compare_n: int = 20
    #: at most this many hints are taken from the turn-4 reply
    max_hints: int = 5
    #: new hints become accepted instead of candidates (unattended runs)
    auto_accept: bool = False
    #: max_tokens of each free-text turn (None: the provider's default)
    turn_max_tokens: int | None = 400
    #: reuse a stored baseline reply (newest matching run) when the workspace has one
    use_stored_baseline: bool = True
    #: reuse this run's replies only (implies use_stored_baseline)
    baseline_run: int | None = None

    def validate(self) -> None:
        if self.effect_mode not in EFFECT_MODES:
            raise UserError(f"unknown effectiveness mode {self.effect_mode!r}: choose "
                            + " or ".join(EFFECT_MODES))
        for name in ("miss_k", "effect_k", "max_hints", "llm_compare_n"):
            if getattr(self, name) < 1:
                raise UserError(f"{name.replace('_', '-')} must be >= 1 (got {getattr(self, name)})")
        if not 0.0 < self.sim_threshold <= 1.0:
            raise UserError(f"similarity threshold must be in (0, 1] (got {self.sim_threshold})")

    @property
    def rank_k(self) -> int:
        return max(self.miss_k, self.effect_k, 10)


@dataclass
class HintCheck:
    """One proposed hint and the outcome of every check it reached."""

    idx: int
    text: str
    verdict: str = "pending"   # added | leak | duplicate | redundant | ineffective | failed | stopped
    leak: str | None = None
    rank_without: int | None = None
    rank_with: int | None = None
    ndcg_without: float | None = None
    ndcg_with: float | None = None
    similar_id: int | None = None
    similarity: float | None = None
    llm_similar_id: int | None = None
    llm_reply: str | None = None
    hint_id: int | None = None


@dataclass
class SessionOutcome:
    session_id: str
    status: str                # hit | done | stopped | failed | skipped
    reflection_id: int | None = None
    baseline_rank: int | None = None
    checks: list[HintCheck] = field(default_factory=list)
    error: str | None = None


@dataclass
class ExploreSummary:
    dataset: str = ""
    model: str = ""
    examined: int = 0          # sessions looked at in this run (baseline known)
    already: int = 0           # skipped: reflected (or hit) in an earlier run
    hits: int = 0              # baseline already had the target in its top miss_k
    reflected: int = 0         # sessions whose four turns completed
    failed: int = 0
    proposed: int = 0
    leak: int = 0
    ineffective: int = 0
    redundant: int = 0         # embedding or LLM redundancy, or an exact duplicate
    added: int = 0
    calls: int = 0
    cache_hits: int = 0
    cost: float = 0.0
    stopped: str | None = None  # why the run stopped early (budget), None if it finished
    outcomes: list[SessionOutcome] = field(default_factory=list)

    def as_dict(self) -> dict:
        d = asdict(self)
        d.pop("outcomes")
        return d


@dataclass
class ExploreProgress:
    """Reported to ``on_progress`` at every stage."""

    reflected: int
    total: int | None          # sessions to reflect on (None: until the split ends)
    session_id: str
    stage: str                 # baseline | turn 2..4 | check i/n | done | hit | ...
    summary: ExploreSummary


# --------------------------------------------------------------------------- hints parsing

_ITEM_PREFIX = re.compile(
    r"^\s*(?:[-*+•·–—]\s*|\(?\d{1,2}\s*[.):\]]\s*|\[\d{1,2}\]\s*|#+\s*)+", re.U)
_LABEL = re.compile(r"^\s*(?:\*\*|__)?\s*(?:hint|tip|suggestion)\s*\d*\s*(?:\*\*|__)?\s*[:.)-]\s*",
                    re.I)
_INLINE_ITEMS = re.compile(r"\s(?=\(?\d{1,2}[.)]\s+\S)")
_QUOTES = "\"'“”‘’«»`"


def parse_hints(reply: str, max_hints: int = 5) -> list[str]:
    """Hints from the turn-4 reply: numbered/bulleted lines, labels and markdown removed."""
    if not isinstance(reply, str) or not reply.strip():
        return []
    lines = [ln for ln in reply.replace("\r", "\n").split("\n") if ln.strip()]
    if len(lines) == 1:
        lines = [p for p in _INLINE_ITEMS.split(lines[0]) if p.strip()]
    out: list[str] = []
    seen: set[str] = set()
    # when the reply has a list, only its items count; otherwise every line but chatter
    listed = any(_ITEM_PREFIX.match(ln) or _LABEL.match(ln) for ln in lines) and len(lines) > 1
    for line in lines:
        raw = line.strip()
        numbered = bool(_ITEM_PREFIX.match(raw) or _LABEL.match(raw))
        if listed and not numbered:
            continue
        text = _ITEM_PREFIX.sub("", raw)
        text = _LABEL.sub("", text)
        text = re.sub(r"(\*\*|__|`)", "", text).strip().strip(_QUOTES).strip()
        if not text or text.endswith(":"):
            continue  # a header ("Here are some hints:")
        if not numbered and len(lines) > 1 and re.match(
                r"(?i)(here|these|this|sure|okay|ok|i hope|i'm|i am|note|hope)\b", text):
            continue  # chatter around the hints
        if len(text.split()) < 3 or len(text) > kb.MAX_HINT_CHARS:
            continue
        text = " ".join(text.split())
        key = kb.text_key(text)
        if key in seen:
            continue
        seen.add(key)
        out.append(text)
        if len(out) >= max_hints:
            break
    return out


# --------------------------------------------------------------------------- leak check

STOPWORDS = frozenset("""
a about above after again against all also am an and any are as at be because been before
being below between both but by can could did do does doing down during each few for from
further had has have having he her here hers him his how i if in into is it its itself just me
more most my no nor not now of off on once only or other our out over own same she should so
some such than that the their them then there these they this those through to too under
until up very was we were what when where which while who whom why will with would you your
vs vol versus
""".split())

#: platform, hardware and product-packaging words: never a distinctive part of a title
GENERIC = frozenset("""
xbox playstation ps ps1 ps2 ps3 ps4 ps5 psp psv vita nintendo wii ds 3ds 2ds switch gamecube
gameboy gba advance n64 nes snes sega genesis dreamcast saturn pc mac windows linux steam
360 one series edition editions collector collectors limited deluxe standard ultimate
complete goty year bundle pack set kit controller controllers console consoles accessory
accessories adapter cable case cover skin skins headset download digital code online import
japan version remastered remaster hd collection anthology trilogy volume part chapter
episode game games gaming video movie film films dvd blu ray disc cd new official sony
microsoft slim lite system compatible universal memory battery charger charging stand
display screen keyboard mouse stick joystick button buttons pen stylus strap carrying
""".split())

#: common English (and genre) words: they leak only as part of a longer title phrase
COMMON_WORDS = frozenset("""
able action adventure age agent air alien aliens all alone american angel angels animal army
art attack baby back bad ball band bank battle beach bear beast beautiful bed best big bird
black blade blood blue body bond book boy boys brave break bride brother brothers call camp
captain car card cars castle cat chase child children christmas city class classic club cold
come comedy cop cops country crazy crime cross cry crystal dance dancer dark daughter day
days dead deadly death deep devil die dirty doctor dog dogs dollar double dragon dream
dreams drive duty earth edge empire end enemy escape evil eye eyes face fall family fantasy
far farm fast father fear fight fighter fighting final fire first fish five flight fly force
forest forever free friday friend friends full fun funny future gang garden ghost girl girls
glory gods gold golden good great green ground guide gun guns hand hard heart heat heaven
hell hero heroes hidden high hill history hit home horror horse hot hotel hour house human
hunt hunter ice island jack journey judge jungle justice kid kids kill killer killing king
kingdom kiss knight lady land last late legend legends life light line little live living
long lord lost love lovers lucky machine mad magic man master men midnight mind mission
money monster monsters moon mother mountain murder music mystery night nights ocean office
old open operation paradise park party past people perfect planet play player point police
power prince princess prison private project queen quest race racing rain raiders real red
return revenge rider riders ring rise river road rock roll room run runner running rush
school sea secret secrets seven shadow shadows shock shot show silent silver sister sky
small soldier soldiers son song soul sound space speed spirit sport sports spy star stars
station steel stone storm story strange street strike summer sun super survival survivor
sword tale tales team ten terror three thunder time tomb tower town trail train travel
treasure trouble true truth two underground universe untold vampire victory war wars warrior
warriors water way west wild wind winter witch wolf woman women wonder world worlds young zero
football soccer basketball baseball hockey golf tennis boxing wrestling racing skate
simulator tactics strategy puzzle arcade shooter platformer role playing rpg sim party
about another beyond becomes character characters cinema core effect effects element
elements experience featuring forbidden greatest hate hits hollywood lose mean might
move remember things tournament used zone adventures mysteries royal mechanical
monitor tone unique style styles specific
""".split())

_TOKEN = re.compile(r"[^\W_]+")
_PLATFORM_TAIL = re.compile(r"\s+[-–—]\s+[^-–—]*$")
_BRACKETS = re.compile(r"\([^()]*\)|\[[^\[\]]*\]")


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(unescape(text).lower().replace("'s ", " ").replace("’s ", " "))


def title_core(title: str) -> str:
    """The title without bracketed parts and a trailing ``" - <platform/descriptor>"``."""
    t = _BRACKETS.sub(" ", unescape(title))
    tail = _PLATFORM_TAIL.search(t)
    if tail and all(w in GENERIC or w in STOPWORDS or w.isdigit()
                    for w in _tokens(tail.group(0))):
        t = t[:tail.start()]
    return " ".join(t.split())


def distinctive_tokens(title: str, common: frozenset[str] = frozenset()) -> list[str]:
    """Title words that alone identify it: not stop/platform/common words, >= 4 letters."""
    out = []
    for w in _tokens(title_core(title)):
        if (len(w) >= 4 and not w.isdigit() and w not in STOPWORDS and w not in GENERIC
                and w not in COMMON_WORDS and w not in common and w not in out):
            out.append(w)
    return out


def _contains(seq: list[str], sub: list[str]) -> bool:
    n = len(sub)
    return n > 0 and any(seq[i:i + n] == sub for i in range(len(seq) - n + 1))


def leak_of(hint: str, target: str, common: frozenset[str] = frozenset()) -> str | None:
    """The part of ``target``'s title that ``hint`` reveals, or None.

    A hint leaks if it contains (1) the title (without platform suffix) as a phrase, (2) two
    consecutive content words of the title (``final fantasy``, ``elder scrolls``), or (3) one
    distinctive title word (:func:`distinctive_tokens`: ``bioshock``, ``madden``, ``addams``).
    A title made only of stop words (``Up``, ``It``) leaks only verbatim with its capitals.
    """
    htoks = _tokens(hint)
    core = title_core(target)
    ctoks = _tokens(core)
    content = [w for w in ctoks if w not in STOPWORDS and w not in GENERIC
               and (len(w) > 1 or w.isdigit())]
    if len(ctoks) > 1 and not all(w in STOPWORDS for w in ctoks) and _contains(htoks, ctoks):
        return core
    if ctoks and not content:
        return core if re.search(rf"(?<!\w){re.escape(core)}(?!\w)", unescape(hint)) else None
    if len(content) == 1 and len(ctoks) == 1 and content[0] in htoks:
        return content[0]
    hcontent = [w for w in htoks if w not in STOPWORDS and w not in GENERIC
                and (len(w) > 1 or w.isdigit())]
    for a, b in zip(content, content[1:]):
        if _contains(hcontent, [a, b]):
            return f"{a} {b}"
    for w in distinctive_tokens(target, common):
        if w in htoks:
            return w
    return None


# --------------------------------------------------------------------------- stored baseline

def stored_baseline(db, session: Session, model: str, *, run_id: int | None = None) -> dict | None:
    """The newest no-hint run item for this session (same model preferred; score imports,
    which have no model, also count)."""
    sql = ("SELECT ri.run_id, ri.reply, ri.ranking FROM run_items ri JOIN runs r ON r.id = ri.run_id "
           "WHERE r.dataset=? AND r.split=? AND ri.session_id=? AND ri.error IS NULL "
           "AND ri.label_ok=1 AND ri.ranking IS NOT NULL "
           "AND COALESCE(r.hint_id, 0)=0 AND COALESCE(r.hint_text, '')='' ")
    args: list = [session.domain, session.split, session.id]
    if run_id is not None:
        sql += "AND r.id=? "
        args.append(run_id)
    else:
        sql += "AND r.kind IN ('recommend','score','baseline') AND (r.model=? OR r.model IS NULL) "
        args.append(model)
    sql += "ORDER BY (r.model IS NOT NULL) DESC, r.id DESC LIMIT 1"
    rows = list(db.query(sql, args))
    if not rows:
        return None
    row = rows[0]
    ranking = json.loads(row["ranking"]) if row["ranking"] else []
    reply = row["reply"] or "\n".join(f"{i}. {session.candidates[c]}"
                                      for i, c in enumerate(ranking, 1))
    return {"source": f"run:{row['run_id']}", "reply": reply, "ranking": ranking}


# --------------------------------------------------------------------------- storage

class _Recorder:
    """Writes one reflection's rows (autocommit: a stopped run keeps what it did)."""

    def __init__(self, db, session: Session, model: str, config: ReflectConfig):
        self.db = db
        self.session = session
        cur = db.execute(
            "INSERT INTO reflections(dataset, session_id, model, prompt_version, params) "
            "VALUES (?,?,?,?,?)",
            [session.domain, session.id, model, REFLECTION_VERSION,
             json.dumps(asdict(config), sort_keys=True)])
        self.id = cur.lastrowid
        self.seq = 0

    def message(self, kind: str, role: str, content: str, *, turn: int | None = None,
                proposal: int | None = None, source: str | None = None,
                call_id: int | None = None) -> None:
        self.seq += 1
        self.db.execute(
            "INSERT INTO reflection_turns(reflection_id, seq, turn, kind, role, content, "
            "proposal, source, call_id) VALUES (?,?,?,?,?,?,?,?,?)",
            [self.id, self.seq, turn, kind, role, content or "", proposal, source, call_id])

    def baseline(self, source: str, ranking: list[int], rank: int | None) -> None:
        self.db.execute("UPDATE reflections SET baseline_source=?, baseline_ranking=?, "
                        "baseline_rank=? WHERE id=?", [source, json.dumps(ranking), rank, self.id])

    def proposal(self, c: HintCheck) -> None:
        d = asdict(c)
        cols = ["reflection_id", *d]
        self.db.execute(
            f"INSERT OR REPLACE INTO reflection_hints({', '.join(cols)}) "
            f"VALUES ({', '.join('?' for _ in cols)})", [self.id, *d.values()])

    def finish(self, status: str, checks: Sequence[HintCheck], error: str | None = None) -> None:
        counts = {
            "n_proposed": len(checks),
            "n_leak": sum(c.verdict == "leak" for c in checks),
            "n_ineffective": sum(c.verdict == "ineffective" for c in checks),
            "n_redundant": sum(c.verdict in ("redundant", "duplicate") for c in checks),
            "n_added": sum(c.verdict == "added" for c in checks),
        }
        sets = ", ".join(f"{k}=?" for k in counts)
        self.db.execute(f"UPDATE reflections SET status=?, error=?, {sets}, finished_at={_NOW} "
                        "WHERE id=?", [status, error, *counts.values(), self.id])


def reflection_record(db, reflection_id: int) -> dict:
    """A reflection with its messages (in order) and proposed hints: for display and tests."""
    rows = list(db.query("SELECT * FROM reflections WHERE id=?", [reflection_id]))
    if not rows:
        raise UserError(f"no reflection with id {reflection_id}")
    rec = rows[0]
    rec["params"] = json.loads(rec["params"]) if rec["params"] else {}
    rec["baseline_ranking"] = json.loads(rec["baseline_ranking"]) if rec["baseline_ranking"] else None
    rec["turns"] = list(db.query("SELECT * FROM reflection_turns WHERE reflection_id=? "
                                 "ORDER BY seq", [reflection_id]))
    rec["hints"] = list(db.query("SELECT * FROM reflection_hints WHERE reflection_id=? "
                                 "ORDER BY idx", [reflection_id]))
    return rec


# --------------------------------------------------------------------------- one session

class _Failed(Exception):
    """An LLM call failed after its retries (the session is marked failed, the run goes on)."""


def _check_ok(res) -> None:
    if not res.ok:
        raise _Failed(res.error)


def _parse_yes_no(reply: str, n: int) -> tuple[bool | None, int | None]:
    """(similar?, 1-based number) from a "Yes, 3" / "No" reply; (None, None) if unclear."""
    m = re.match(r"\W*(yes|no)\b", reply or "", re.I)
    if not m:
        return None, None
    if m.group(1).lower() == "no":
        return False, None
    num = re.search(r"\d+", reply[m.end():])
    k = int(num.group(0)) if num else None
    return True, k if k is not None and 1 <= k <= n else None


async def reflect_session(db, client, session: Session, config: ReflectConfig | None = None, *,
                          encoder=None, common: frozenset[str] = frozenset(),
                          on_stage: Callable[[str], None] | None = None) -> SessionOutcome:
    """Reflect on one session (see the module docstring); the KB gets the surviving hints.

    Raises :class:`BudgetExceeded` (after marking the reflection ``stopped``); an LLM call that
    fails after its retries marks the reflection ``failed`` and returns.
    """
    from re2llm_tui import embeddings
    from re2llm_tui.control import RunStop

    config = config or ReflectConfig()
    config.validate()
    stage = on_stage or (lambda s: None)
    kb.ensure_seeded(db, session.dataset)
    rec = _Recorder(db, session, client.model, config)
    out = SessionOutcome(session.id, "running", rec.id)
    checks: list[HintCheck] = out.checks
    decoding = {"max_tokens": config.turn_max_tokens} if config.turn_max_tokens else {}
    try:
        # turn 1: the recommendation (stored or asked)
        stage("baseline")
        stored = None
        if config.use_stored_baseline or config.baseline_run is not None:
            stored = stored_baseline(db, session, client.model, run_id=config.baseline_run)
        if stored is not None:
            reply, ranking, source, call_id = stored["reply"], stored["ranking"], stored["source"], None
        else:
            res = await client.rank(session.prompt, session.candidates, k=config.rank_k)
            _check_ok(res)
            ranking = list(res.ranking)
            reply = res.text or "\n".join(f"{i}. {session.candidates[c]}"
                                          for i, c in enumerate(ranking, 1))
            source, call_id = "llm", res.call_id
        rank = rank_of(ranking, session.target_index)
        out.baseline_rank = rank
        rec.message("recommend", "user", session.prompt, turn=1)
        rec.message("recommend", "assistant", reply, turn=1, source=source, call_id=call_id)
        rec.baseline(source, ranking, rank)
        if rank is not None and rank <= config.miss_k:
            rec.finish("hit", [])
            out.status = "hit"
            return out

        # turns 2-4: mistakes, analysis with the target revealed, hints
        messages = [{"role": "user", "content": session.prompt},
                    {"role": "assistant", "content": reply}]
        turns = ((2, "mistakes", reflection_mistakes_prompt()),
                 (3, "analysis", reflection_analysis_prompt(session.target)),
                 (4, "hints", reflection_hints_prompt(config.max_hints)))
        for turn, kind, prompt in turns:
            stage(f"turn {turn}")
            messages.append({"role": "user", "content": prompt})
            rec.message(kind, "user", prompt, turn=turn)
            res = await client.complete(messages, purpose=f"reflect:{kind}", **decoding)
            _check_ok(res)
            messages.append({"role": "assistant", "content": res.text})
            rec.message(kind, "assistant", res.text, turn=turn, source="llm", call_id=res.call_id)

        texts = parse_hints(messages[-1]["content"], config.max_hints)
        checks.extend(HintCheck(i, t) for i, t in enumerate(texts, 1))
        for c in checks:
            rec.proposal(c)
        ndcg_without = ndcg_at(rank, config.effect_k)
        for c in checks:
            stage(f"check {c.idx}/{len(checks)}")
            await _check_hint(db, client, rec, session, config, c, rank, ndcg_without,
                              encoder=encoder, common=common, embeddings=embeddings)
            rec.proposal(c)
        rec.finish("done", checks)
        out.status = "done"
        return out
    except _Failed as exc:
        _close_pending(rec, checks, "failed")
        rec.finish("failed", checks, error=str(exc))
        out.status, out.error = "failed", str(exc)
        return out
    except BaseException as exc:
        import asyncio

        _close_pending(rec, checks, "stopped")
        status = "stopped" if isinstance(exc, (RunStop, KeyboardInterrupt,
                                                asyncio.CancelledError)) else "failed"
        rec.finish(status, checks, error=" ".join(str(exc).split()) or type(exc).__name__)
        out.status = status
        raise


def _close_pending(rec: "_Recorder", checks, verdict: str) -> None:
    """Record every hint whose checks never ran with ``verdict``."""
    for c in checks:
        if c.verdict == "pending":
            c.verdict = verdict
            rec.proposal(c)


async def _check_hint(db, client, rec: _Recorder, session: Session, config: ReflectConfig,
                      c: HintCheck, rank: int | None, ndcg_without: float, *, encoder, common,
                      embeddings) -> None:
    dataset = session.domain
    # leak
    c.leak = leak_of(c.text, session.target, common)
    if c.leak:
        c.verdict = "leak"
        return
    # exact duplicate of any hint (a rejected one included)
    dup = kb.find_duplicate(db, dataset, c.text)
    if dup is not None:
        c.verdict, c.similar_id, c.similarity = "duplicate", dup.id, 1.0
        return
    # redundancy by embedding, against accepted + candidate hints
    existing = kb.list_hints(db, dataset, ("accepted", "candidate"))
    sims = None
    if existing:
        vecs = embeddings.encode([c.text, *[h.text for h in existing]], db=db, encoder=encoder)
        sims = embeddings.cosine_matrix(vecs[:1], vecs[1:])[0]
        best = int(sims.argmax())
        c.similar_id, c.similarity = existing[best].id, round(float(sims[best]), 4)
        if c.similarity >= config.sim_threshold:
            c.verdict = "redundant"
            return
    # effectiveness: the original prompt with the hint appended
    hinted = recommend_prompt(session.prompt, c.text)
    res = await client.rank(hinted, session.candidates, k=config.rank_k)
    rec.message("effect", "user", hinted, proposal=c.idx)
    rec.message("effect", "assistant", res.text or "", proposal=c.idx,
                source="llm", call_id=res.call_id)
    _check_ok(res)
    c.rank_without, c.ndcg_without = rank, round(ndcg_without, 6)
    c.rank_with = rank_of(res.ranking, session.target_index)
    c.ndcg_with = round(ndcg_at(c.rank_with, config.effect_k), 6)
    entered = c.rank_with is not None and c.rank_with <= config.effect_k
    effective = entered if config.effect_mode == "enter" else c.ndcg_with > c.ndcg_without
    if not effective:
        c.verdict = "ineffective"
        return
    # redundancy as the paper: ask the LLM, showing the most similar existing hints
    if config.llm_redundancy and existing:
        order = sorted(range(len(existing)), key=lambda i: -float(sims[i]))[:config.llm_compare_n]
        shown = [existing[i] for i in order]
        prompt = redundancy_prompt([h.text for h in shown], c.text)
        rec.message("redundancy", "user", prompt, proposal=c.idx)
        res = await client.complete([{"role": "user", "content": prompt}],
                                    purpose="reflect:redundancy", max_tokens=16)
        rec.message("redundancy", "assistant", res.text or "", proposal=c.idx,
                    source="llm", call_id=res.call_id)
        _check_ok(res)
        c.llm_reply = " ".join((res.text or "").split())[:200]
        similar, number = _parse_yes_no(res.text, len(shown))
        if similar:
            c.llm_similar_id = shown[number - 1].id if number else shown[0].id
            c.verdict = "redundant"
            return
    # a survivor
    effect = {"rank_without": c.rank_without, "rank_with": c.rank_with,
              "ndcg_without": c.ndcg_without, "ndcg_with": c.ndcg_with,
              "k": config.effect_k, "mode": config.effect_mode}
    hint = kb.add_hint(db, dataset, c.text,
                       status="accepted" if config.auto_accept else "candidate",
                       source="reflection", session_id=session.id, reflection_id=rec.id,
                       effect=effect, similar_id=c.similar_id, similarity=c.similarity)
    c.hint_id, c.verdict = hint.id, "added"


# --------------------------------------------------------------------------- many sessions

def explored_sessions(db, dataset: str, model: str) -> set[str]:
    """Sessions finished (reflected or hit) with this model and prompt version."""
    return {r[0] for r in db.execute(
        "SELECT session_id FROM reflections WHERE dataset=? AND model=? AND prompt_version=? "
        "AND status IN ('done','hit')", [canonical_domain(dataset), model, REFLECTION_VERSION])}


async def explore(db, client, ds: Dataset, *, split: str = "train", sessions: int | None = None,
                  session_id: str | None = None, config: ReflectConfig | None = None,
                  encoder=None,
                  on_progress: Callable[[ExploreProgress], None] | None = None) -> ExploreSummary:
    """Reflect on the sessions of a split the model misses, in order, until ``sessions``
    missed ones were reflected on or failed (all of the split if None), or just ``session_id``.

    Resumable: sessions finished earlier with the same model and prompt version are skipped.
    A :class:`BudgetExceeded` from the client ends the run cleanly (``summary.stopped``).
    """
    from re2llm_tui.control import RunStop

    config = config or ReflectConfig()
    config.validate()
    ds = Dataset.resolve(ds)
    dataset = ds.name
    if sessions is not None and sessions < 1:
        raise UserError(f"--sessions must be >= 1 (got {sessions})")
    todo = [ds.session(session_id)] if session_id else ds.sessions(split)
    kb.ensure_seeded(db, ds)
    summary = ExploreSummary(dataset=dataset, model=client.model)
    done_before = explored_sessions(db, dataset, client.model)
    total = 1 if session_id else sessions
    stats0 = (client.stats.calls, client.stats.cache_hits, client.stats.cost)

    def report(sid: str, stage: str) -> None:
        if on_progress:
            on_progress(ExploreProgress(summary.reflected, total, sid, stage, summary))

    for session in todo:
        if sessions is not None and summary.reflected + summary.failed >= sessions:
            break
        if session.id in done_before:
            summary.already += 1
            continue
        try:
            outcome = await reflect_session(db, client, session, config, encoder=encoder,
                                            on_stage=lambda s, sid=session.id: report(sid, s))
        except RunStop as exc:
            summary.stopped = str(exc)
            report(session.id, "stopped")
            break
        summary.outcomes.append(outcome)
        summary.examined += 1
        if outcome.status == "hit":
            summary.hits += 1
        elif outcome.status == "failed":
            summary.failed += 1
        else:
            summary.reflected += 1
        for c in outcome.checks:
            summary.proposed += 1
            summary.leak += c.verdict == "leak"
            summary.ineffective += c.verdict == "ineffective"
            summary.redundant += c.verdict in ("redundant", "duplicate")
            summary.added += c.verdict == "added"
        report(session.id, outcome.status)
    summary.calls = client.stats.calls - stats0[0]
    summary.cache_hits = client.stats.cache_hits - stats0[1]
    summary.cost = client.stats.cost - stats0[2]
    return summary
