"""The agent's hyperparameters (CleanRL's ``@dataclass Args``): one documented field each.

Every episode is a single step (one session gets one hint), so the return is the reward and
the advantage is ``r - V(s)``: there is no ``gamma`` or ``gae_lambda``.  The actor and the
critic are separate networks with their own optimisers, so there is no ``vf_coef`` either.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from re2llm_tui.errors import UserError


@dataclass
class PPOConfig:
    """PPO hyperparameters; the defaults are the Re2LLM release's."""

    total_steps: int = 500_000
    """environment steps (sessions given a hint) in the whole run"""
    hidden: int = 64
    """units in each of the two tanh hidden layers (actor and critic alike)"""
    actor_lr: float = 3e-4
    """Adam learning rate of the actor (the policy over hints)"""
    critic_lr: float = 3e-4
    """Adam learning rate of the critic (the state-value estimate)"""
    anneal_lr: bool = True
    """decay both learning rates linearly to 0 over the run"""
    clip_coef: float = 0.05
    """PPO surrogate clipping: the probability ratio is kept within ``1 +- clip_coef``"""
    update_epochs: int = 10
    """optimisation epochs over each batch"""
    batch_size: int = 32
    """environment steps per PPO update"""
    minibatch_size: int = 32
    """samples per gradient step (``batch_size`` must be a multiple of it)"""
    ent_coef: float = 0.01
    """weight of the entropy bonus in the actor's loss"""
    max_grad_norm: float = 0.5
    """gradient-norm clipping, per network"""
    norm_adv: bool = True
    """normalise advantages within each minibatch"""
    adam_eps: float = 1e-5
    """Adam's epsilon (both networks)"""
    seed: int = 1
    """seeds the networks' initialisation, the session order, the action sampling and the
    minibatch shuffles"""
    log_every: int = 1024
    """environment steps between scalar reports (rounded up to whole updates)"""
    eval_every: int = 0
    """steps between greedy evaluations over all sessions (0: at every report)"""

    def validate(self) -> PPOConfig:
        ints = {"total_steps": 1, "hidden": 1, "update_epochs": 1, "batch_size": 1,
                "minibatch_size": 1, "log_every": 1, "eval_every": 0}
        for name, low in ints.items():
            value = getattr(self, name)
            if not isinstance(value, int) or value < low:
                raise UserError(f"PPO setting {name} must be an integer >= {low} (got {value!r})")
        if self.batch_size % self.minibatch_size:
            raise UserError(f"PPO batch_size {self.batch_size} is not a multiple of "
                            f"minibatch_size {self.minibatch_size}")
        for name in ("actor_lr", "critic_lr", "clip_coef", "ent_coef", "max_grad_norm", "adam_eps"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise UserError(f"PPO setting {name} must be a number >= 0 (got {value!r})")
        return self

    @property
    def num_updates(self) -> int:
        """PPO updates in the run (the last batch may overshoot ``total_steps``)."""
        return -(-self.total_steps // self.batch_size)

    @classmethod
    def from_dict(cls, data: dict) -> PPOConfig:
        """A config from a stored dict; unknown keys (of other versions) are ignored."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})
