"""The PPO trainer (CleanRL's main loop): seeding, rollout, advantages, K epochs, reports.

One episode is one session given one hint, so a rollout of ``batch_size`` sessions is
vectorised, the return is the reward and the advantage is ``r - V(s)``; an *episode pass* is
one pass over the shuffled training sessions.  Each PPO update (:meth:`PPOTrainer._update`):

1. rollout -- the next ``batch_size`` sessions of the pass, a hint sampled for each from the
   policy, their rewards from the :class:`~re2llm_tui.utilization.rewards.RewardSource`;
2. advantages -- ``r - V(s)`` (normalised per minibatch when ``norm_adv``);
3. ``update_epochs`` epochs of clipped minibatch updates of the critic and the actor
   (:mod:`.numpy_update`, whose spec is :mod:`.ppo_loss`);

and every ``log_every`` steps :meth:`PPOTrainer.train` reports namespaced scalars
(:data:`SCALAR_TAGS`: ``charts/reward_mean``, ``losses/policy``, ...) through a callback --
the protocol between trainer, store and UI.  Checkpoints: :mod:`.checkpoints`.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from re2llm_tui.control import Control, StopRequested
from re2llm_tui.errors import UserError
from re2llm_tui.utilization.agent import checkpoints
from re2llm_tui.utilization.agent.config import PPOConfig
from re2llm_tui.utilization.agent.networks import ActorCritic
from re2llm_tui.utilization.agent.numpy_update import (
    ManualMLP,
    Minibatch,
    actor_epochs,
    critic_epochs,
    log_softmax_cols,
    single_threaded,
)
from re2llm_tui.utilization.rewards import RewardSource

#: the scalar tags a training run reports (the protocol between trainer, store and UI)
SCALAR_TAGS = (
    "charts/reward_mean", "charts/eval_reward", "losses/policy", "losses/value",
    "losses/entropy", "losses/approx_kl", "losses/clipfrac", "charts/learning_rate",
    "charts/episode", "charts/steps_per_s", "charts/llm_calls", "charts/cache_hits",
    "charts/cost", "charts/action_hist",
)


@dataclass
class TrainOutcome:
    """How :meth:`PPOTrainer.train` ended."""

    status: str            # done | stopped
    step: int
    updates: int
    last_scalars: dict


#: ``on_scalars(step, {tag: value})``, called at every report
ScalarCallback = Callable[[int, dict], None]


def states_fingerprint(states: np.ndarray) -> str:
    """A short hash of the session states (a checkpoint resumes only on the same ones)."""
    arr = np.ascontiguousarray(states, dtype=np.float32)
    return hashlib.sha256(arr.tobytes() + str(arr.shape).encode()).hexdigest()[:16]


class PPOTrainer:
    """PPO on one-step episodes: one state per session, one hint per episode.

    ``states``: ``[n_sessions, d]``; ``source``: a :class:`RewardSource` over the same
    sessions and ``n_actions`` actions.  ``kb_version`` and ``hint_ids`` name the action list
    (stored in checkpoints; a checkpoint for another version is refused).
    """

    def __init__(self, states, source: RewardSource, config: PPOConfig | None = None, *,
                 kb_version: str = "", hint_ids: Sequence[int] | None = None) -> None:
        self.cfg = (config or PPOConfig()).validate()
        states = np.ascontiguousarray(np.asarray(states, dtype=np.float32))
        if states.ndim != 2 or not len(states):
            raise UserError(f"states must be a non-empty [n_sessions, d] array (got {states.shape})")
        if not np.isfinite(states).all():
            raise UserError("states contain non-finite values")
        n, d = states.shape
        if source.n_sessions != n:
            raise UserError(f"reward source covers {source.n_sessions} sessions, states {n}")
        if source.n_actions < 1:
            raise UserError("the action list is empty")
        self.n_sessions, self.state_dim, self.n_actions = n, d, int(source.n_actions)
        hint_ids = list(range(self.n_actions)) if hint_ids is None else [int(h) for h in hint_ids]
        if len(hint_ids) != self.n_actions:
            raise UserError(f"{len(hint_ids)} hint ids for {self.n_actions} actions")
        self.kb_version, self.hint_ids = kb_version, hint_ids
        self.states = states
        self.fingerprint = states_fingerprint(states)
        self.source = source
        cfg = self.cfg

        # ---- seeding: the networks from a forked torch RNG, everything else from one PCG64
        self.agent = ActorCritic(d, self.n_actions, cfg.hidden, seed=cfg.seed)
        self.rng = np.random.default_rng(cfg.seed)
        self.actor_mlp = ManualMLP(self.agent.actor, cfg.actor_lr, cfg.adam_eps, cfg.max_grad_norm)
        self.critic_mlp = ManualMLP(self.agent.critic, cfg.critic_lr, cfg.adam_eps, cfg.max_grad_norm)
        self.states_aug = np.ones((n, d + 1), np.float32)
        self.states_aug[:, :d] = states

        # ---- progress
        self.step = 0
        self.update = 0
        self.episodes_done = 0
        self.perm = self.rng.permutation(n)
        self.pos = 0
        self._reset_window()
        self.next_log = cfg.log_every
        self.next_eval = 0
        self.last_eval = float("nan")
        self.last_scalars: dict = {}

    # -- episodes -----------------------------------------------------------------------
    def _take_sessions(self, k: int) -> np.ndarray:
        """The next ``k`` sessions of the shuffled pass (a new shuffle after each pass)."""
        parts = []
        while k:
            if self.pos >= self.n_sessions:
                self.perm = self.rng.permutation(self.n_sessions)
                self.pos = 0
                self.episodes_done += 1
            take = min(k, self.n_sessions - self.pos)
            parts.append(self.perm[self.pos:self.pos + take])
            self.pos += take
            k -= take
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def _reset_window(self) -> None:
        self.win_reward = 0.0
        self.win_steps = 0
        self.win_actions = np.zeros(self.n_actions, dtype=np.int64)
        self.win_time = 0.0

    # -- policy -------------------------------------------------------------------------
    @torch.no_grad()
    def greedy_actions(self, states=None) -> np.ndarray:
        """The argmax action per state (default: every training session)."""
        x = torch.from_numpy(self.states if states is None else
                             np.ascontiguousarray(states, dtype=np.float32))
        return self.agent.greedy(x).numpy().astype(np.int64)

    def evaluate(self) -> float:
        """Mean reward of the greedy (argmax) policy over all sessions."""
        acts = self.greedy_actions()
        return float(np.mean(self.source.rewards(np.arange(self.n_sessions), acts)))

    # -- one PPO update -----------------------------------------------------------------
    def _rollout(self) -> Minibatch:
        """Give the next ``batch_size`` sessions a hint each, sampled from the policy."""
        cfg = self.cfg
        B = cfg.batch_size
        snapshot = (self.rng.bit_generator.state, self.perm, self.pos, self.episodes_done)
        idx = self._take_sessions(B)
        u = self.rng.random(B, dtype=np.float32)
        xa = self.states_aug[idx]
        logits = self.actor_mlp.forward(xa, self.actor_mlp.buffers(B))
        values = self.critic_mlp.forward(xa, self.critic_mlp.buffers(B))[0]
        logp = log_softmax_cols(logits)
        # sample from the policy: the first action whose cumulative probability exceeds u
        cdf = np.exp(logp).cumsum(axis=0)
        actions = np.minimum((cdf < u).sum(axis=0), self.n_actions - 1).astype(np.int64)
        old_logp = logp.take(actions * B + np.arange(B))
        try:
            rewards = np.asarray(self.source.rewards(idx, actions), dtype=np.float32).reshape(B)
        except BaseException:
            # nothing was learned from this batch: rewind so that a resume replays it
            self.rng.bit_generator.state, self.perm, self.pos, self.episodes_done = snapshot
            raise
        # one-step episodes: the return is the reward, the advantage r - V(s)
        advantages = rewards - values
        return Minibatch(xa, actions, old_logp, advantages, rewards, cfg)

    def _schedule(self, batch: Minibatch) -> tuple[list[Minibatch], bool]:
        """The minibatches of every epoch; ``True`` when the first is the rollout's batch
        itself (whose forward pass is then reused)."""
        cfg = self.cfg
        if cfg.minibatch_size == cfg.batch_size:
            return [batch] * cfg.update_epochs, True
        out = []
        for _ in range(cfg.update_epochs):
            perm = self.rng.permutation(cfg.batch_size)
            for start in range(0, cfg.batch_size, cfg.minibatch_size):
                sel = perm[start:start + cfg.minibatch_size]
                out.append(Minibatch(batch.xa[sel], batch.actions[sel], batch.logprobs[sel],
                                     batch.adv_raw[sel], batch.returns[sel], cfg))
        return out, False

    def _update(self, want_stats: bool) -> dict:
        """One PPO update: rollout -> advantages -> ``update_epochs`` epochs of minibatch
        updates (critic, then actor); the ``losses/*`` scalars when ``want_stats``."""
        cfg = self.cfg
        frac = 1.0 - self.update / cfg.num_updates if cfg.anneal_lr else 1.0
        batch = self._rollout()
        acts, rewards = batch.actions, batch.returns
        schedule, reuse = self._schedule(batch)
        stats: dict | None = {} if want_stats else None
        critic_epochs(self.critic_mlp, schedule, frac, reuse, stats)
        actor_epochs(self.actor_mlp, schedule, cfg, frac, reuse, stats)
        self.update += 1
        self.step += cfg.batch_size
        self.win_reward += float(rewards.sum(dtype=np.float64))
        self.win_steps += len(rewards)
        self.win_actions += np.bincount(acts, minlength=self.n_actions)
        if stats is not None:
            stats["charts/learning_rate"] = cfg.actor_lr * frac
        return stats or {}

    # -- the loop -----------------------------------------------------------------------
    def train(self, on_scalars: ScalarCallback | None = None, control: Control | None = None,
              checkpoint_path: str | os.PathLike | None = None,
              checkpoint_every: int | None = None) -> TrainOutcome:
        """Run until ``cfg.total_steps`` (or a stop request); report every ``log_every`` steps.

        A stop request, or an exception from the reward source (e.g. a budget stop), saves a
        checkpoint first when ``checkpoint_path`` is given; the exception is re-raised.
        """
        cfg = self.cfg
        control = control or Control()
        limits = single_threaded()
        limits.__enter__()
        next_ckpt = (self.step + checkpoint_every) if checkpoint_every else None
        status = "done"
        try:
            t_mark = time.perf_counter()
            while self.update < cfg.num_updates:
                if control.stop.is_set():
                    status = "stopped"
                    break
                if control.pause.is_set():
                    self.win_time += time.perf_counter() - t_mark
                    try:
                        control.check()          # waits while paused (and says so)
                    except StopRequested:
                        status = "stopped"
                        break
                    t_mark = time.perf_counter()
                    continue
                last = self.update + 1 == cfg.num_updates
                report = self.step + cfg.batch_size >= self.next_log or last
                stats = self._update(want_stats=report)
                if report:
                    now = time.perf_counter()
                    self.win_time += now - t_mark
                    t_mark = now
                    self._report(stats, on_scalars)
                if next_ckpt is not None and self.step >= next_ckpt and checkpoint_path:
                    self.save(checkpoint_path)
                    next_ckpt = self.step + checkpoint_every
        except BaseException:
            if checkpoint_path:
                self.save(checkpoint_path)
            raise
        finally:
            limits.__exit__(None, None, None)
        if checkpoint_path:
            self.save(checkpoint_path)
        return TrainOutcome(status, self.step, self.update, dict(self.last_scalars))

    def _report(self, stats: dict, on_scalars: ScalarCallback | None) -> None:
        """The window's scalars (:data:`SCALAR_TAGS`) to ``on_scalars``; a new window."""
        cfg = self.cfg
        scalars = dict(stats)
        scalars["charts/reward_mean"] = self.win_reward / max(1, self.win_steps)
        if cfg.eval_every == 0 or self.step >= self.next_eval:
            self.last_eval = self.evaluate()
            self.next_eval = self.step + cfg.eval_every
        scalars["charts/eval_reward"] = self.last_eval
        scalars["charts/episode"] = self.episodes_done + self.pos / self.n_sessions
        scalars["charts/steps_per_s"] = self.win_steps / self.win_time if self.win_time > 0 else 0.0
        src = self.source.stats()
        scalars["charts/llm_calls"] = int(src.get("llm_calls", 0))
        scalars["charts/cache_hits"] = int(src.get("cache_hits", 0))
        scalars["charts/cost"] = float(src.get("cost", 0.0))
        scalars["charts/action_hist"] = [int(c) for c in self.win_actions]
        while self.next_log <= self.step:
            self.next_log += cfg.log_every
        self._reset_window()
        self.last_scalars = scalars
        if on_scalars is not None:
            on_scalars(self.step, scalars)

    # -- checkpoints (the format: checkpoints.py) ---------------------------------------
    def checkpoint(self) -> dict:
        return checkpoints.trainer_state(self)

    def save(self, path: str | os.PathLike) -> Path:
        """Write a checkpoint atomically (temp file + rename)."""
        return checkpoints.write_checkpoint(self.checkpoint(), path)

    @classmethod
    def load(cls, path: str | os.PathLike, states, source: RewardSource, *, kb_version: str,
             hint_ids: Sequence[int] | None = None,
             config: PPOConfig | None = None) -> PPOTrainer:
        """Resume from ``path``; the KB version and the sessions must be the checkpoint's.

        ``config`` may change only ``total_steps``, ``log_every`` and ``eval_every`` (the
        rest is the checkpoint's).
        """
        ck = checkpoints.read_checkpoint(path)
        checkpoints.check_kb_version(ck, kb_version, hint_ids, where=str(path))
        cfg = checkpoints.resumed_config(ck, config)
        trainer = cls(states, source, cfg, kb_version=ck["kb_version"], hint_ids=ck["hint_ids"])
        checkpoints.restore_trainer_state(trainer, ck, where=f"checkpoint {path}")
        return trainer
