"""The cost preflight of a priced job: ``--dry-run``'s estimate before anything is paid."""

from __future__ import annotations

from typing import Callable

from re2llm_tui.tui.controls.host import Host, background
from re2llm_tui.tui.messages import CostEstimated


class CostPreflight:
    """Start a job that pays for LLM calls: a local model (or ``ask=False``) starts it at
    once; a priced model's estimate is computed in a thread and posted as
    :class:`~re2llm_tui.tui.messages.CostEstimated` (the app asks the user, then calls its
    ``start``)."""

    def __init__(self, host: Host) -> None:
        self.host = host
        #: show the estimate before a priced model's job starts (tests of the jobs
        #: themselves turn it off; tests/test_preflight.py covers the confirmation)
        self.ask = True

    def confirm(self, command: str, start: Callable[[], None], *,
                train_limit: int | None = None) -> None:
        """``command``: ``train`` or ``evaluate``; ``train_limit``: the sessions of the run
        to be trained or resumed (default: the configured limit)."""
        if self.host.config.is_demo_model or not self.ask:
            start()
            return
        background(self.host, self._estimate, command, start, train_limit,
                   name="preflight", title=f"{command}: cost preflight")

    def _estimate(self, command: str, start: Callable[[], None],
                  train_limit: int | None) -> None:
        from re2llm_tui.costs import dry_run

        host, c = self.host, self.host.config
        db = host.open_db()
        client = None
        try:
            client = dry_run.dry_client(c.db_path, model=c.model, **c.llm_options)
            if command == "train":
                opts = c.train_options
                limit = opts.get("limit") if train_limit is None else train_limit
                est = dry_run.train(client, db, c.ds, limit=limit,
                                    prefill=opts.get("prefill", True),
                                    rank_by=opts.get("rank_by", "reply"),
                                    workers=opts.get("workers", 1),
                                    samples=opts.get("samples", c.samples))
            else:
                opts = c.eval_options
                est = dry_run.evaluate(client, db, c.ds, c.eval_split, limit=opts.get("limit"),
                                       sample=opts.get("sample"), seed=opts.get("seed", 0),
                                       oracle=opts.get("oracle", True),
                                       train_run=opts.get("train_run"),
                                       permutations=opts.get("permutations", 0),
                                       rank_by=opts.get("rank_by", "reply"),
                                       workers=opts.get("workers", 1),
                                       samples=opts.get("samples", c.samples))
        finally:                 # a failure: background() notifies it; nothing starts
            if client is not None:
                client.close()
            db.conn.close()
        host.post_message(CostEstimated(command, est, start))
