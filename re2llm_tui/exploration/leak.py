"""The leak check: a hint must not reveal the target (its title, two consecutive content
words of it, or one distinctive word)."""

from __future__ import annotations

import re

from re2llm_tui.data.release import unescape
from re2llm_tui.llm.thinking import answer_of

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
    The hint is read without a thinking block (only its answer can become a hint).
    """
    hint = answer_of(hint)
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
