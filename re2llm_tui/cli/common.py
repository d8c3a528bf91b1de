"""Options shared by several commands, each declared once with one help text.

Every command that takes an option below uses the object declared here (a typer
``OptionInfo`` may be shared by several commands), so a flag reads the same in every
``--help``.  The names end in ``Option`` so that they never shadow the core classes a command
imports (``DatasetOption`` here, :class:`re2llm_tui.data.dataset.Dataset` there).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

# -- data and workspace ---------------------------------------------------------------------

DatasetOption = typer.Option("games", "--dataset", "-d",
                             help="games (or game) / movies (or movie) / the name of a "
                                  "dataset imported with `data import`")
SplitOption = typer.Option("test", "--split", "-s", help="train / test")
DataDirOption = typer.Option(None, "--data-dir",
                             help="release data folder (default: $RE2LLM_DATA, then "
                                  "../shared/datasets/re2llm-release, then "
                                  "./data/re2llm-release); imported datasets live in its "
                                  "imported/ folder (default: ./data/imported)")
DbOption = typer.Option(None, "--db", help="workspace file (default: $RE2LLM_DB or ./kb.sqlite)")
JsonOption = typer.Option(False, "--json", help="print JSON instead of a table")
RankByOption = typer.Option(
    "reply", "--rank-by",
    help="how the target's rank is counted: reply = its position among the reply's listed "
         "items (invented and repeated titles keep their slots; the release's reading); "
         "candidates = its position among the matched candidates only")

# -- the LLM (re2llm_tui.llm.client.LLMClient's arguments) ------------------------------------

ModelOption = typer.Option(
    None, "--model", "-m", envvar="RE2LLM_MODEL",
    help="the LLM: a litellm model string (gpt-5-mini, anthropic/claude-sonnet-4-5, "
         "ollama_chat/qwen3, deepseek/deepseek-reasoner, "
         "hosted_vllm/NAME with --api-base); default: the embedded 135M demo model "
         "local/smollm2-135m")
ApiBaseOption = typer.Option(
    None, "--api-base",
    help="OpenAI-compatible server URL for --model; repeat to spread calls over several "
         "servers")
ConcurrencyOption = typer.Option(
    None, "--concurrency", "-c",
    help="LLM calls in flight (default: 1 for the embedded model, 4 per --api-base, "
         "8 otherwise)")
MaxCostOption = typer.Option(
    None, "--max-cost",
    help="stop cleanly at this USD spend (calls in flight may overshoot it); rerun the "
         "same command to resume")
MaxCallsOption = typer.Option(
    None, "--max-calls",
    help="stop cleanly after this many LLM requests sent (cache hits are free); rerun the "
         "same command to resume")
TimeoutOption = typer.Option(60.0, "--timeout", help="seconds per LLM call")
MaxReplyBytesOption = typer.Option(
    None, "--max-reply-bytes", envvar="RE2LLM_MAX_REPLY_BYTES",
    help="largest reply body read from a server; a larger one is a failed call, not retried "
         "(default: 4 MiB)")
RetriesOption = typer.Option(
    4, "--retries",
    help="retries of a call that failed on a rate limit, timeout, connection error, 5xx or "
         "unparseable reply")
LocalWorkersOption = typer.Option(
    None, "--local-workers", "-w",
    help="processes computing reward outcomes, each with its own model instance and a "
         "shard of the sessions (default: 2 for the embedded model, 1 otherwise; at most "
         "one per core, or 4)")

ClientProcsOption = typer.Option(
    None, "--client-procs",
    help="client processes making the LLM calls, each with its own event loop and "
         "connections and a shard of the sessions, sharing --max-cost/--max-calls (for a "
         "fleet behind several --api-base; default: $RE2LLM_CLIENT_PROCS, else 1; at most "
         "one per core, or 4)")
TransportOption = typer.Option(
    None, "--transport",
    help="how requests reach the model: auto (fast for hosted_vllm/ and openai/ with "
         "--api-base, litellm otherwise), litellm, fast (default: $RE2LLM_TRANSPORT, else "
         "auto)")

ReasoningEffortOption = typer.Option(
    None, "--reasoning-effort",
    help="none / minimal / low / medium / high: how hard a reasoning model thinks (gpt-5, "
         "o-series, claude-sonnet-4-5 and gemini thinking budgets through litellm, "
         "deepseek-reasoner, a declared --reasoning server); part of the cache key and the "
         "run's config (default: the provider's)")
ReasoningOption = typer.Option(
    None, "--reasoning/--no-reasoning",
    help="declare that --model thinks before it answers (a self-hosted Qwen3 / R1 behind "
         "--api-base): its output limit leaves room for reasoning; remembered for the "
         "model in the workspace")
NoTemperatureOption = typer.Option(
    None, "--no-temperature/--takes-temperature",
    help="declare that --model refuses temperature 0 (it is never sent; replies are "
         "sampled, not greedy); remembered for the model in the workspace")

OptPath = Optional[Path]
OptStr = Optional[str]


def console(stderr: bool = False):
    """A rich Console for lines whose markup the code owns (``[yellow]stopped:[/yellow]``).

    Data interpolated into such a line (a title, label, path, model name, message) goes
    through :func:`re2llm_tui.safe_text.escape`; tables take :func:`~re2llm_tui.safe_text.text`
    cells.  Emoji codes (``:fire:``) are never replaced: they could come from data.
    """
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, emoji=False)

SampleOption = typer.Option(None, "--sample", min=1,
                            help="a seeded random subset of N sessions (--seed; in the split's "
                                 "order; stored with the run) instead of all or --limit")

SamplesOption = typer.Option(
    None, "--samples", help="ask each request N times (1-50; distinct cached keys) and report "
    "metrics as the mean over samples with the between-sample spread: for a model whose "
    "replies are sampled (a reasoning model)")

DryRunOption = typer.Option(
    False, "--dry-run",
    help="print the calls still to pay after the cache, their estimated tokens, dollars "
         "(litellm's price table; 0 for the local model) and time, and exit: nothing is "
         "sent, no API key is needed")


def decoding_options(reasoning_effort: str | None, reasoning: bool | None,
                     no_temperature: bool | None) -> dict:
    """``--reasoning-effort``, ``--reasoning``, ``--no-temperature`` as LLMClient keyword
    arguments; the effort also becomes this process's ``$RE2LLM_REASONING_EFFORT`` for the
    processes it spawns (declarations reach them through the workspace)."""
    from re2llm_tui.llm.capabilities import use_effort

    declared = {k: v for k, v in (("reasoning", reasoning), ("no_temperature", no_temperature))
                if v is not None}
    return {"reasoning_effort": use_effort(reasoning_effort), "declared": declared or None}


def command_client(db, *, api_base, transport, max_reply_bytes, **options):
    """The LLM client of a command with ``--api-base``, ``--transport`` and
    ``--max-reply-bytes``: the last two checked (one line) and made this process's settings,
    which the processes it spawns read; ``options`` are LLMClient's other arguments."""
    from re2llm_tui.llm.client import LLMClient
    from re2llm_tui.llm.replies import use_max_reply_bytes
    from re2llm_tui.llm.transport import use_transport

    max_reply_bytes = use_max_reply_bytes(max_reply_bytes)
    return LLMClient(db, api_bases=tuple(api_base or ()), transport=use_transport(transport),
                     max_reply_bytes=max_reply_bytes, **options)


def print_estimate(est, as_json: bool) -> None:
    """A ``--dry-run``'s :class:`~re2llm_tui.costs.preflight.Estimate` on stdout: a table, or
    JSON."""
    if as_json:
        import json

        print(json.dumps(est.as_dict()))
    else:
        from re2llm_tui.costs import dry_run

        dry_run.print_estimate(est, console())
