"""The PPO loss, written the textbook way with autograd: the readable spec of the update.

For a minibatch of sessions ``s`` with sampled hints ``a``, their log-probabilities under
the policy that sampled them, advantages ``A = r - V_old(s)`` and returns ``R = r``:

    ratio    = pi(a | s) / pi_old(a | s)
    L_policy = mean(max(-A * ratio, -A * clip(ratio, 1 - c, 1 + c))) - ent_coef * mean(H(pi(. | s)))
    L_value  = 0.5 * mean((V(s) - R)^2)

(CleanRL's ``cleanrl/ppo.py``, with the actor and the critic optimised separately: each loss
trains its own network, its gradient clipped to ``max_grad_norm``, with its own Adam.)

:func:`reference_update` is one whole PPO update this way.  Training does not use it: at
these network sizes PyTorch's per-operation overhead dominates (about 10x slower), so
:mod:`.numpy_update` writes the same arithmetic out by hand, and ``tests/test_agent.py``
checks that both give the same parameters.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from re2llm_tui.utilization.agent.config import PPOConfig
from re2llm_tui.utilization.agent.networks import ActorCritic


def ppo_losses(agent: ActorCritic, x, actions, old_logprob, advantages, returns,
               cfg: PPOConfig) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(policy loss incl. entropy bonus, value loss, mean entropy) of one minibatch, autograd."""
    _, newlogprob, entropy, newvalue = agent.get_action_and_value(x, actions)
    ratio = (newlogprob - old_logprob).exp()
    adv = advantages
    if cfg.norm_adv and len(adv) > 1:
        adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    # the clipped surrogate objective, as a loss to minimise
    pg_loss1 = -adv * ratio
    pg_loss2 = -adv * torch.clamp(ratio, 1 - cfg.clip_coef, 1 + cfg.clip_coef)
    pg_loss = torch.max(pg_loss1, pg_loss2).mean()
    v_loss = 0.5 * ((newvalue - returns) ** 2).mean()
    ent = entropy.mean()
    return pg_loss - cfg.ent_coef * ent, v_loss, ent


def reference_update(agent: ActorCritic, optimizers: tuple[torch.optim.Optimizer, ...],
                     batch: dict, cfg: PPOConfig, frac: float = 1.0,
                     minibatch_order: Sequence[Sequence[int]] | None = None) -> None:
    """One PPO update with autograd and ``torch.optim.Adam`` (the readable definition).

    ``batch`` holds ``x, actions, logprobs, advantages, returns``; ``frac`` is the annealed
    fraction of the learning rates; ``minibatch_order`` lists the minibatches of every epoch
    (default: the whole batch in order, each epoch).
    """
    opt_a, opt_c = optimizers
    if cfg.anneal_lr:
        opt_a.param_groups[0]["lr"] = frac * cfg.actor_lr
        opt_c.param_groups[0]["lr"] = frac * cfg.critic_lr
    n = len(batch["actions"])
    order = minibatch_order or [list(range(n))] * cfg.update_epochs
    for mb in order:
        mb = torch.as_tensor(mb)
        pg, v_loss, _ = ppo_losses(agent, batch["x"][mb], batch["actions"][mb],
                                   batch["logprobs"][mb], batch["advantages"][mb],
                                   batch["returns"][mb], cfg)
        for net, opt, loss in ((agent.actor, opt_a, pg), (agent.critic, opt_c, v_loss)):
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(net.parameters(), cfg.max_grad_norm)
            opt.step()


def make_reference_optimizers(agent: ActorCritic, cfg: PPOConfig):
    """(actor Adam, critic Adam) for :func:`reference_update`."""
    return (torch.optim.Adam(agent.actor.parameters(), lr=cfg.actor_lr, eps=cfg.adam_eps),
            torch.optim.Adam(agent.critic.parameters(), lr=cfg.critic_lr, eps=cfg.adam_eps))
