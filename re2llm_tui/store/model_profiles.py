"""What the user declared about a model, remembered per model in the workspace.

A model litellm does not know (``hosted_vllm/qwen3-8b`` on a vLLM server, ``openai/NAME`` on an
``--api-base``) cannot tell whether it reasons or takes a temperature; the user says so once
(``--reasoning``, ``--no-temperature``) and later commands on the same workspace use it
without the flags.  Stored in the ``meta`` table under ``model_profile:<model>`` as JSON
(``{"no_temperature": true, "reasoning": true}``; a flag absent: not declared); no schema
change.  A flag given now overrides the remembered value of that flag and is remembered in
its turn (:func:`resolve_declared`).

Declarations are plain dicts of :data:`FLAGS` (``True``/``False``; absent: not declared):
the store sits below the LLM layer, which reads them with
:meth:`re2llm_tui.llm.capabilities.Declared.of`.
"""

from __future__ import annotations

import json

from re2llm_tui.store.workspace import get_meta, set_meta, transaction

PREFIX = "model_profile:"
#: what a user can declare about a model
FLAGS = ("reasoning", "no_temperature")


def _key(model: str) -> str:
    return PREFIX + model.strip()


def _clean(d) -> dict[str, bool]:
    if not isinstance(d, dict):
        return {}
    return {k: d[k] for k in FLAGS if isinstance(d.get(k), bool)}


def load_declared(db, model: str) -> dict[str, bool]:
    """The declarations remembered for ``model`` (``{}``: none).  A damaged value (not a
    JSON object) reads as none, never an error."""
    raw = get_meta(db, _key(model))
    if raw is None:
        return {}
    try:
        return _clean(json.loads(raw))
    except ValueError:
        return {}


def save_declared(db, model: str, declared: dict) -> None:
    """Remember ``declared`` for ``model`` (flags that are not ``True``/``False`` are not
    stored); an empty declaration forgets the model."""
    d = _clean(declared)
    with transaction(db):
        if d:
            set_meta(db, _key(model), json.dumps(d, sort_keys=True))
        else:
            db.execute("DELETE FROM meta WHERE key=?", [_key(model)])


def resolve_declared(db, model: str, reasoning: bool | None = None,
                     no_temperature: bool | None = None) -> dict[str, bool]:
    """The declarations in force for ``model``: the flags given now (``None``: not given)
    over the remembered ones; remembered when a flag was given."""
    now = _clean({"reasoning": reasoning, "no_temperature": no_temperature})
    merged = {**load_declared(db, model), **now}
    if now:
        save_declared(db, model, merged)
    return merged


def declared_models(db) -> dict[str, dict[str, bool]]:
    """Every model with remembered declarations (for the CLI/TUI to show)."""
    out = {}
    for (key,) in db.execute("SELECT key FROM meta WHERE key LIKE ? ORDER BY key",
                             [PREFIX + "%"]).fetchall():
        d = load_declared(db, key[len(PREFIX):])
        if d:
            out[key[len(PREFIX):]] = d
    return out
