"""The retrieval agent of Re2LLM's Reinforcement Utilization: PPO over the hint list.

State: a session vector (the mean item embedding, :mod:`re2llm_tui.utilization.session_encoder`).
Action: an index into the KB's action list (0 = no hint, then the accepted hints by id).
Reward: ``r(s, h)`` from a *reward source* -- a table, a function, or the LLM-backed cache of
:mod:`re2llm_tui.utilization.rewards`.  Every episode is a single step (one session gets one hint), so
the return is the reward and ``gamma`` plays no role; an *episode pass* is one pass over the
shuffled training sessions.

CleanRL-style (``cleanrl/ppo.py``): the hyperparameters are the fields of :class:`PPOConfig`;
the seeding is explicit; the loop is flat -- rollout (a batch of sessions, vectorised) ->
advantages -> K epochs of clipped minibatch updates -- and it reports namespaced scalars
(``charts/reward_mean``, ``losses/policy``, ...) through a callback.

Speed.  The networks are tiny (two 64-unit tanh layers over 384 inputs), so PyTorch's
per-operation overhead, not arithmetic, would dominate a textbook autograd update (measured
here: ~650 env steps/s).  :class:`_ManualMLP` therefore writes the update out by hand: the
forward pass, the backward pass of the PPO / value loss, gradient clipping and a fused Adam
step, on preallocated buffers that *are* the parameters of the ``nn.Module`` networks (the
biases live in an extra weight column).  :func:`reference_update` is the same update with
autograd and ``torch.optim.Adam``; the tests check that both give the same parameters.
Kernels run single-threaded (:func:`single_threaded`): at these sizes BLAS threads only
contend, and running the actor's and the critic's epochs on two Python threads gained
nothing measurable (the GIL serialises their many small operations).

Checkpoints hold the networks, the optimiser moments, the RNG state, the step, the episode
position and the KB version + hint ids of the action list; :meth:`PPOTrainer.load` refuses a
checkpoint made for another KB version (:class:`KBVersionMismatch`).
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Callable, Protocol, Sequence

import numpy as np
import torch
from torch import nn

# pause/stop flags a trainer answers between updates (one class for the whole project)
from re2llm_tui.control import Control, StopRequested  # noqa: F401  (Control is re-exported)
from re2llm_tui.errors import UserError

CHECKPOINT_FORMAT = "re2llm-ppo-v1"

#: the scalar tags a training run reports (the protocol between trainer, store and UI)
SCALAR_TAGS = (
    "charts/reward_mean", "charts/eval_reward", "losses/policy", "losses/value",
    "losses/entropy", "losses/approx_kl", "losses/clipfrac", "charts/learning_rate",
    "charts/episode", "charts/steps_per_s", "charts/llm_calls", "charts/cache_hits",
    "charts/cost", "charts/action_hist",
)


# --------------------------------------------------------------------------- config

@dataclass
class PPOConfig:
    """PPO hyperparameters; the defaults are the Re2LLM release's."""

    total_steps: int = 500_000
    """environment steps (sessions given a hint) in the whole run"""
    hidden: int = 64
    """units in each of the two tanh hidden layers (actor and critic alike)"""
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    anneal_lr: bool = True
    """decay both learning rates linearly to 0 over the run"""
    clip_coef: float = 0.05
    """PPO surrogate clipping"""
    update_epochs: int = 10
    """optimisation epochs over each batch"""
    batch_size: int = 32
    """environment steps per PPO update"""
    minibatch_size: int = 32
    ent_coef: float = 0.01
    max_grad_norm: float = 0.5
    """gradient-norm clipping, per network"""
    norm_adv: bool = True
    """normalise advantages within each minibatch"""
    adam_eps: float = 1e-5
    seed: int = 1
    log_every: int = 1024
    """environment steps between scalar reports (rounded up to whole updates)"""
    eval_every: int = 0
    """steps between greedy evaluations over all sessions (0: at every report)"""

    def validate(self) -> "PPOConfig":
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
        return -(-self.total_steps // self.batch_size)

    @classmethod
    def from_dict(cls, data: dict) -> "PPOConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


class KBVersionMismatch(UserError):
    """A checkpoint was trained on another action list (KB version) than the current one."""


# --------------------------------------------------------------------------- rewards

class RewardSource(Protocol):
    """Where rewards come from: ``rewards(sessions, actions)`` for a batch of pairs."""

    n_sessions: int
    n_actions: int

    def rewards(self, sessions: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """float rewards for the pairs ``(sessions[i], actions[i])``."""

    def stats(self) -> dict[str, int]:
        """``{"llm_calls": ..., "cache_hits": ...}`` so far."""


class RewardTable:
    """A fully known reward table ``[n_sessions, n_actions]``: lookups only."""

    def __init__(self, table) -> None:
        arr = np.ascontiguousarray(np.asarray(table, dtype=np.float32))
        if arr.ndim != 2 or not arr.size:
            raise UserError(f"reward table must be a non-empty 2-D array (got shape {arr.shape})")
        if not np.isfinite(arr).all():
            raise UserError("reward table has missing or non-finite entries")
        self.table = arr
        self.n_sessions, self.n_actions = arr.shape

    def rewards(self, sessions: np.ndarray, actions: np.ndarray) -> np.ndarray:
        return self.table[sessions, actions]

    def stats(self) -> dict[str, int]:
        return {"llm_calls": 0, "cache_hits": 0}


class RewardFunction:
    """``reward(session_index, action) -> float``, called at most once per pair (memoised).

    ``stats()`` counts calls of ``reward`` as ``llm_calls`` and memo hits as ``cache_hits``.
    """

    def __init__(self, reward: Callable[[int, int], float], n_sessions: int, n_actions: int) -> None:
        self.reward = reward
        self.n_sessions, self.n_actions = int(n_sessions), int(n_actions)
        self.table = np.full((self.n_sessions, self.n_actions), np.nan, dtype=np.float32)
        self.calls = 0
        self.hits = 0

    def rewards(self, sessions: np.ndarray, actions: np.ndarray) -> np.ndarray:
        vals = self.table[sessions, actions]
        missing = np.isnan(vals)
        for i in np.flatnonzero(missing):
            s, a = int(sessions[i]), int(actions[i])
            if np.isnan(self.table[s, a]):      # a pair repeated within the batch: once
                self.table[s, a] = float(self.reward(s, a))
                self.calls += 1
            else:
                self.hits += 1
            vals[i] = self.table[s, a]
        self.hits += int((~missing).sum())
        return vals

    def stats(self) -> dict[str, int]:
        return {"llm_calls": self.calls, "cache_hits": self.hits}


# --------------------------------------------------------------------------- networks

def layer_init(layer: nn.Linear, std: float = math.sqrt(2), bias_const: float = 0.0) -> nn.Linear:
    """CleanRL's initialisation: orthogonal weights with gain ``std``, constant bias."""
    nn.init.orthogonal_(layer.weight, std)
    nn.init.constant_(layer.bias, bias_const)
    return layer


def make_actor(state_dim: int, n_actions: int, hidden: int = 64) -> nn.Sequential:
    return nn.Sequential(
        layer_init(nn.Linear(state_dim, hidden)), nn.Tanh(),
        layer_init(nn.Linear(hidden, hidden)), nn.Tanh(),
        layer_init(nn.Linear(hidden, n_actions), std=0.01),
    )


def make_critic(state_dim: int, hidden: int = 64) -> nn.Sequential:
    return nn.Sequential(
        layer_init(nn.Linear(state_dim, hidden)), nn.Tanh(),
        layer_init(nn.Linear(hidden, hidden)), nn.Tanh(),
        layer_init(nn.Linear(hidden, 1), std=1.0),
    )


class ActorCritic(nn.Module):
    """Separate actor (hint logits) and critic (state value) MLPs."""

    def __init__(self, state_dim: int, n_actions: int, hidden: int = 64, seed: int = 1) -> None:
        super().__init__()
        # explicit seeding that leaves the global torch RNG untouched
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.actor = make_actor(state_dim, n_actions, hidden)
            self.critic = make_critic(state_dim, hidden)

    def get_value(self, x: torch.Tensor) -> torch.Tensor:
        return self.critic(x).squeeze(-1)

    def get_action_and_value(self, x: torch.Tensor, action: torch.Tensor | None = None):
        logits = self.actor(x)
        probs = torch.distributions.Categorical(logits=logits)
        if action is None:
            action = probs.sample()
        return action, probs.log_prob(action), probs.entropy(), self.get_value(x)

    @torch.no_grad()
    def greedy(self, x: torch.Tensor) -> torch.Tensor:
        """The argmax action per state (ties: the lowest index)."""
        return self.actor(x).argmax(dim=-1)


# --------------------------------------------------------------------------- reference update

def ppo_losses(agent: ActorCritic, x, actions, old_logprob, advantages, returns,
               cfg: PPOConfig) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(policy loss incl. entropy bonus, value loss, mean entropy) of one minibatch, autograd."""
    _, newlogprob, entropy, newvalue = agent.get_action_and_value(x, actions)
    ratio = (newlogprob - old_logprob).exp()
    adv = advantages
    if cfg.norm_adv and len(adv) > 1:
        adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    pg_loss = torch.max(-adv * ratio,
                        -adv * torch.clamp(ratio, 1 - cfg.clip_coef, 1 + cfg.clip_coef)).mean()
    v_loss = 0.5 * ((newvalue - returns) ** 2).mean()
    ent = entropy.mean()
    return pg_loss - cfg.ent_coef * ent, v_loss, ent


def reference_update(agent: ActorCritic, optimizers: tuple[torch.optim.Optimizer, ...],
                     batch: dict, cfg: PPOConfig, frac: float = 1.0,
                     minibatch_order: Sequence[Sequence[int]] | None = None) -> None:
    """One PPO update with autograd and ``torch.optim.Adam`` (the readable definition).

    ``batch`` holds ``x, actions, logprobs, advantages, returns``; ``minibatch_order`` lists
    the minibatches of every epoch (default: the whole batch in order, each epoch).
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
    return (torch.optim.Adam(agent.actor.parameters(), lr=cfg.actor_lr, eps=cfg.adam_eps),
            torch.optim.Adam(agent.critic.parameters(), lr=cfg.critic_lr, eps=cfg.adam_eps))


# --------------------------------------------------------------------------- fast update

_HAS_FUSED_ADAM = hasattr(torch, "_fused_adam_")


class _ManualMLP:
    """Forward, backward and Adam for a ``Linear-Tanh-Linear-Tanh-Linear`` net, by hand.

    Each layer's weight and bias live side by side in one block ``[out, in + 1]`` (the bias
    is the last column); the three blocks are views into one flat float32 vector, so that
    clipping and Adam are one operation each.  The ``nn.Linear`` parameters of the module are
    re-pointed at these views (module and update share memory), and the arithmetic runs on
    numpy views of the same memory: numpy's per-call cost is a third of torch's at these
    sizes.  Activations are columns (features x batch) with a constant row of ones, so every
    affine map is one matrix product.  Adam is torch's fused kernel on the same memory.
    """

    def __init__(self, net: nn.Sequential, lr: float, eps: float, max_grad_norm: float) -> None:
        layers = [net[0], net[2], net[4]]
        shapes = [(l.out_features, l.in_features + 1) for l in layers]
        sizes = [o * i for o, i in shapes]
        total = sum(sizes)
        self.flat_t = torch.empty(total)
        self.grad_t = torch.zeros(total)
        self.exp_avg_t = torch.zeros(total)
        self.exp_avg_sq_t = torch.zeros(total)
        self.step_t = torch.zeros((), dtype=torch.float32)
        self.grad = self.grad_t.numpy()
        self.W: list[np.ndarray] = []     # parameter blocks [out, in + 1]
        self.G: list[np.ndarray] = []     # their gradients
        self.WT: list[np.ndarray] = []    # weight part, transposed view [in, out]
        off = 0
        for layer, (o, i), size in zip(layers, shapes, sizes):
            w = self.flat_t[off:off + size].view(o, i)
            w[:, :-1] = layer.weight.detach()
            w[:, -1] = layer.bias.detach()
            layer.weight.data = w[:, :-1]
            layer.bias.data = w[:, -1]
            self.W.append(w.numpy())
            self.WT.append(w.numpy()[:, :-1].T)
            self.G.append(self.grad_t[off:off + size].view(o, i).numpy())
            off += size
        self.lr, self.eps, self.max_grad_norm = lr, eps, max_grad_norm
        self.hidden = shapes[0][0]
        self.n_out = shapes[2][0]
        self._bufs: dict[int, dict[str, np.ndarray]] = {}
        self.last_grad_norm = 0.0

    def buffers(self, m: int) -> dict[str, np.ndarray]:
        """Preallocated activations for a batch of ``m`` columns."""
        b = self._bufs.get(m)
        if b is None:
            h = self.hidden
            b = {"H1": np.ones((h + 1, m), np.float32), "H2": np.ones((h + 1, m), np.float32),
                 "out": np.empty((self.n_out, m), np.float32),
                 "dH2": np.empty((h, m), np.float32), "dH1": np.empty((h, m), np.float32),
                 "tmp": np.empty((h, m), np.float32)}
            self._bufs[m] = b
        return b

    def forward(self, xa: np.ndarray, b: dict) -> np.ndarray:
        """``xa``: inputs as rows with a trailing 1 (``[m, d+1]``); returns ``[out, m]``."""
        h = self.hidden
        H1, H2 = b["H1"][:h], b["H2"][:h]
        np.tanh(np.matmul(self.W[0], xa.T, out=H1), out=H1)
        np.tanh(np.matmul(self.W[1], b["H1"], out=H2), out=H2)
        return np.matmul(self.W[2], b["H2"], out=b["out"])

    def backward(self, xa: np.ndarray, b: dict, d_out: np.ndarray) -> None:
        """Gradients into ``self.grad`` from ``d_out = dL/d(out)`` (``[out, m]``)."""
        h = self.hidden
        H1, H2, dH2, dH1, tmp = b["H1"], b["H2"], b["dH2"], b["dH1"], b["tmp"]
        np.matmul(d_out, H2.T, out=self.G[2])
        np.matmul(self.WT[2], d_out, out=dH2)
        np.multiply(H2[:h], H2[:h], out=tmp)             # tanh' = 1 - tanh^2
        np.subtract(1.0, tmp, out=tmp)
        dH2 *= tmp
        np.matmul(dH2, H1.T, out=self.G[1])
        np.matmul(self.WT[1], dH2, out=dH1)
        np.multiply(H1[:h], H1[:h], out=tmp)
        np.subtract(1.0, tmp, out=tmp)
        dH1 *= tmp
        np.matmul(dH1, xa, out=self.G[0])

    def clip_and_step(self, frac: float) -> None:
        """``clip_grad_norm_(max_grad_norm)`` then one Adam step (``torch.optim.Adam``)."""
        g = self.grad
        norm = math.sqrt(float(np.dot(g, g)))
        self.last_grad_norm = norm
        coef = self.max_grad_norm / (norm + 1e-6)
        if coef < 1.0:
            g *= coef
        self.step_t += 1
        lr = self.lr * frac
        if _HAS_FUSED_ADAM:
            torch._fused_adam_([self.flat_t], [self.grad_t], [self.exp_avg_t], [self.exp_avg_sq_t],
                               [], [self.step_t], lr=lr, beta1=0.9, beta2=0.999,
                               weight_decay=0.0, eps=self.eps, amsgrad=False, maximize=False)
        else:  # the same arithmetic with public operations
            step = float(self.step_t)
            self.exp_avg_t.lerp_(self.grad_t, 0.1)
            self.exp_avg_sq_t.mul_(0.999).addcmul_(self.grad_t, self.grad_t, value=0.001)
            denom = (self.exp_avg_sq_t.sqrt() / math.sqrt(1 - 0.999 ** step)).add_(self.eps)
            self.flat_t.addcdiv_(self.exp_avg_t, denom, value=-lr / (1 - 0.9 ** step))

    def state(self) -> dict[str, torch.Tensor]:
        return {"exp_avg": self.exp_avg_t.clone(), "exp_avg_sq": self.exp_avg_sq_t.clone(),
                "step": self.step_t.clone()}

    def load_state(self, state: dict) -> None:
        self.exp_avg_t.copy_(state["exp_avg"])
        self.exp_avg_sq_t.copy_(state["exp_avg_sq"])
        self.step_t.copy_(state["step"])


def _log_softmax_cols(z: np.ndarray) -> np.ndarray:
    """Column-wise log-softmax of ``[A, m]`` logits."""
    shifted = z - z.max(axis=0)
    shifted -= np.log(np.exp(shifted).sum(axis=0))
    return shifted


class _Minibatch:
    """One minibatch as columns (samples), with what every epoch's gradient reuses."""

    def __init__(self, xa: np.ndarray, actions: np.ndarray, logprobs: np.ndarray,
                 advantages: np.ndarray, returns: np.ndarray, cfg: PPOConfig) -> None:
        m = len(actions)
        self.m = m
        self.xa = xa                              # [m, d+1] states with a trailing 1
        self.actions = actions                    # [m] int64
        self.logprobs = logprobs                  # [m]
        self.returns = returns                    # [m]
        self.adv_raw = advantages                 # [m] before normalisation
        adv = advantages.astype(np.float32)
        if cfg.norm_adv and m > 1:
            adv = (adv - adv.mean()) / (adv.std(ddof=1) + np.float32(1e-8))
        self.adv = adv.astype(np.float32)
        # flat positions of the chosen logits in a [A, m] array
        self.pick = (actions * m + np.arange(m)).astype(np.intp)
        # the clipped surrogate passes gradient where A > 0 and r <= 1 + c, or A < 0 and
        # r >= 1 - c, i.e. where sign(A) * r <= sign(A) + c
        self.neg_adv_m = (-self.adv / m).astype(np.float32)
        self.sign = np.sign(self.adv).astype(np.float32)
        self.sign_c = (self.sign + np.float32(cfg.clip_coef)).astype(np.float32)


def _actor_epochs(mlp: _ManualMLP, schedule: list[_Minibatch], cfg: PPOConfig, frac: float,
                  reuse_first: bool, stats: dict | None) -> None:
    """The actor's epochs: clipped surrogate + entropy bonus, differentiated by hand.

    With ``logp = log_softmax(z)``, ``p = exp(logp)``, entropy ``H = -sum(p logp)`` and the
    chosen action ``a``: ``dL/dz = dlogp_a * (onehot_a - p) + ent_coef/m * p * (logp + H)``,
    where ``dlogp_a = -A/m * ratio`` on the unclipped branch and 0 on the clipped one.
    """
    last = len(schedule) - 1
    for k, mb in enumerate(schedule):
        b = mlp.buffers(mb.m)
        logits = b["out"] if (k == 0 and reuse_first) else mlp.forward(mb.xa, b)
        ecm = np.float32(cfg.ent_coef / mb.m)
        logp = _log_softmax_cols(logits)
        p = np.exp(logp)
        logratio = logp.take(mb.pick) - mb.logprobs
        ratio = np.exp(logratio)
        if stats is not None and k == last:
            _record_actor_stats(stats, logp, p, logratio, ratio, mb, cfg)
        dlogp = ratio * mb.neg_adv_m
        dlogp *= (ratio * mb.sign) <= mb.sign_c
        plogp = p * logp
        t = plogp.sum(axis=0)
        t *= ecm
        t += dlogp
        plogp *= ecm
        p *= t
        dz = np.subtract(plogp, p, out=plogp)
        dz.ravel()[mb.pick] += dlogp
        mlp.backward(mb.xa, b, dz)
        mlp.clip_and_step(frac)


def _record_actor_stats(stats, logp, p, logratio, ratio, mb: _Minibatch, cfg: PPOConfig) -> None:
    c = cfg.clip_coef
    pg = np.maximum(-mb.adv * ratio, -mb.adv * np.clip(ratio, 1 - c, 1 + c)).mean()
    stats["losses/policy"] = float(pg)
    stats["losses/entropy"] = float(-(p * logp).sum(axis=0).mean())
    stats["losses/approx_kl"] = float(((ratio - 1) - logratio).mean())
    stats["losses/clipfrac"] = float((np.abs(ratio - 1) > c).mean())


def _critic_epochs(mlp: _ManualMLP, schedule: list[_Minibatch], frac: float,
                   reuse_first: bool, stats: dict | None) -> None:
    """The critic's epochs: loss ``0.5 * mean((v - R)^2)``, so ``dL/dv = (v - R) / m``."""
    last = len(schedule) - 1
    for k, mb in enumerate(schedule):
        b = mlp.buffers(mb.m)
        value = b["out"] if (k == 0 and reuse_first) else mlp.forward(mb.xa, b)
        dv = value - mb.returns
        if stats is not None and k == last:
            stats["losses/value"] = float(0.5 * np.mean(dv * dv))
        dv *= np.float32(1.0 / mb.m)
        mlp.backward(mb.xa, b, dv)
        mlp.clip_and_step(frac)


# --------------------------------------------------------------------------- the trainer

@contextlib.contextmanager
def single_threaded():
    """Single-threaded BLAS and torch kernels for the duration (restored afterwards).

    At these matrix sizes (32 x 385 x 64) threads only contend, and OpenBLAS's spinning
    workers collapse throughput when the cores are shared with anything else (measured:
    25x slower).
    """
    from threadpoolctl import threadpool_limits

    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    limits = threadpool_limits(1, user_api="blas")
    try:
        yield
    finally:
        limits.restore_original_limits()
        torch.set_num_threads(prev)


@dataclass
class TrainOutcome:
    status: str            # done | stopped
    step: int
    updates: int
    last_scalars: dict


ScalarCallback = Callable[[int, dict], None]


def states_fingerprint(states: np.ndarray) -> str:
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
        self.actor_mlp = _ManualMLP(self.agent.actor, cfg.actor_lr, cfg.adam_eps, cfg.max_grad_norm)
        self.critic_mlp = _ManualMLP(self.agent.critic, cfg.critic_lr, cfg.adam_eps, cfg.max_grad_norm)
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
    def _rollout(self) -> _Minibatch:
        """Give the next ``batch_size`` sessions a hint each, sampled from the policy."""
        cfg = self.cfg
        B = cfg.batch_size
        snapshot = (self.rng.bit_generator.state, self.perm, self.pos, self.episodes_done)
        idx = self._take_sessions(B)
        u = self.rng.random(B, dtype=np.float32)
        xa = self.states_aug[idx]
        logits = self.actor_mlp.forward(xa, self.actor_mlp.buffers(B))
        values = self.critic_mlp.forward(xa, self.critic_mlp.buffers(B))[0]
        logp = _log_softmax_cols(logits)
        cdf = np.exp(logp).cumsum(axis=0)
        actions = np.minimum((cdf < u).sum(axis=0), self.n_actions - 1).astype(np.int64)
        old_logp = logp.take(actions * B + np.arange(B))
        try:
            rewards = np.asarray(self.source.rewards(idx, actions), dtype=np.float32).reshape(B)
        except BaseException:
            # nothing was learned from this batch: rewind so that a resume replays it
            self.rng.bit_generator.state, self.perm, self.pos, self.episodes_done = snapshot
            raise
        return _Minibatch(xa, actions, old_logp, rewards - values, rewards, cfg)

    def _schedule(self, batch: _Minibatch) -> tuple[list[_Minibatch], bool]:
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
                out.append(_Minibatch(batch.xa[sel], batch.actions[sel], batch.logprobs[sel],
                                      batch.adv_raw[sel], batch.returns[sel], cfg))
        return out, False

    def _update(self, want_stats: bool) -> dict:
        cfg = self.cfg
        frac = 1.0 - self.update / cfg.num_updates if cfg.anneal_lr else 1.0
        batch = self._rollout()
        acts, rewards = batch.actions, batch.returns
        schedule, reuse = self._schedule(batch)
        stats: dict | None = {} if want_stats else None
        _critic_epochs(self.critic_mlp, schedule, frac, reuse, stats)
        _actor_epochs(self.actor_mlp, schedule, cfg, frac, reuse, stats)
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

    # -- checkpoints --------------------------------------------------------------------
    def checkpoint(self) -> dict:
        return {
            "format": CHECKPOINT_FORMAT,
            "config": asdict(self.cfg),
            "kb_version": self.kb_version,
            "hint_ids": list(self.hint_ids),
            "n_sessions": self.n_sessions,
            "state_dim": self.state_dim,
            "n_actions": self.n_actions,
            "states_fingerprint": self.fingerprint,
            "actor": {k: v.clone() for k, v in self.agent.actor.state_dict().items()},
            "critic": {k: v.clone() for k, v in self.agent.critic.state_dict().items()},
            "actor_adam": self.actor_mlp.state(),
            "critic_adam": self.critic_mlp.state(),
            "rng": _rng_state_to_plain(self.rng.bit_generator.state),
            "step": self.step,
            "update": self.update,
            "episodes_done": self.episodes_done,
            "perm": torch.from_numpy(np.asarray(self.perm, dtype=np.int64).copy()),
            "pos": self.pos,
            "window": {"reward": self.win_reward, "steps": self.win_steps,
                       "actions": torch.from_numpy(self.win_actions.copy()),
                       "time": self.win_time},
            "next_log": self.next_log,
            "next_eval": self.next_eval,
            "last_eval": self.last_eval,
        }

    def save(self, path: str | os.PathLike) -> Path:
        """Write a checkpoint atomically (temp file + rename)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        torch.save(self.checkpoint(), tmp)
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, states, source: RewardSource, *, kb_version: str,
             hint_ids: Sequence[int] | None = None,
             config: PPOConfig | None = None) -> "PPOTrainer":
        """Resume from ``path``; the KB version and the sessions must be the checkpoint's.

        ``config`` may change only ``total_steps``, ``log_every`` and ``eval_every`` (the
        rest is the checkpoint's).
        """
        ck = read_checkpoint(path)
        check_kb_version(ck, kb_version, hint_ids, where=str(path))
        saved = PPOConfig.from_dict(ck["config"])
        if config is not None:
            for name in ("total_steps", "log_every", "eval_every"):
                setattr(saved, name, getattr(config, name))
        trainer = cls(states, source, saved, kb_version=ck["kb_version"], hint_ids=ck["hint_ids"])
        if trainer.fingerprint != ck["states_fingerprint"]:
            raise UserError(f"checkpoint {path} was trained on other sessions/states "
                            f"({ck['n_sessions']} sessions); start a new run")
        trainer.agent.actor.load_state_dict(ck["actor"])
        trainer.agent.critic.load_state_dict(ck["critic"])
        trainer.actor_mlp.load_state(ck["actor_adam"])
        trainer.critic_mlp.load_state(ck["critic_adam"])
        trainer.rng.bit_generator.state = ck["rng"]
        trainer.step, trainer.update = int(ck["step"]), int(ck["update"])
        trainer.episodes_done = int(ck["episodes_done"])
        trainer.perm = ck["perm"].numpy().copy()
        trainer.pos = int(ck["pos"])
        w = ck["window"]
        trainer.win_reward, trainer.win_steps = float(w["reward"]), int(w["steps"])
        trainer.win_actions = w["actions"].numpy().copy()
        trainer.win_time = float(w["time"])
        trainer.next_log, trainer.next_eval = int(ck["next_log"]), int(ck["next_eval"])
        trainer.last_eval = float(ck["last_eval"])
        return trainer


def _rng_state_to_plain(state: dict) -> dict:
    """numpy's bit-generator state as plain str/int dicts (loadable with weights_only)."""
    return {k: (_rng_state_to_plain(v) if isinstance(v, dict) else
                (int(v) if isinstance(v, (int, np.integer)) else v)) for k, v in state.items()}


def read_checkpoint(path: str | os.PathLike) -> dict:
    """A checkpoint dict; a one-line :class:`UserError` for a missing or foreign file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint {path} not found")
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the user's to fix
        raise UserError(f"checkpoint {path} is unreadable ({type(exc).__name__})") from None
    if not isinstance(ck, dict) or ck.get("format") != CHECKPOINT_FORMAT:
        raise UserError(f"{path} is not a re2llm-tui agent checkpoint")
    return ck


def check_kb_version(ck: dict, kb_version: str, hint_ids: Sequence[int] | None,
                     where: str = "checkpoint") -> None:
    """Refuse a checkpoint whose action list differs from the current KB's."""
    if ck["kb_version"] != kb_version or (
            hint_ids is not None and list(ck["hint_ids"]) != [int(h) for h in hint_ids]):
        raise KBVersionMismatch(
            f"{where} was trained on KB version {ck['kb_version']} ({ck['n_actions']} actions), "
            f"but the accepted hints are now KB version {kb_version}"
            + (f" ({len(hint_ids)} actions)" if hint_ids is not None else "")
            + ": its actions no longer match; train a new agent")


class Policy:
    """A trained actor loaded for inference (argmax over the checkpoint's action list)."""

    def __init__(self, ck: dict) -> None:
        self.checkpoint = ck
        self.kb_version: str = ck["kb_version"]
        self.hint_ids: list[int] = list(ck["hint_ids"])
        cfg = PPOConfig.from_dict(ck["config"])
        self.actor = make_actor(int(ck["state_dim"]), int(ck["n_actions"]), cfg.hidden)
        self.actor.load_state_dict(ck["actor"])
        self.actor.eval()

    @classmethod
    def load(cls, path: str | os.PathLike, *, kb_version: str | None = None,
             hint_ids: Sequence[int] | None = None) -> "Policy":
        ck = read_checkpoint(path)
        if kb_version is not None:
            check_kb_version(ck, kb_version, hint_ids, where=f"agent checkpoint {path}")
        return cls(ck)

    @torch.no_grad()
    def act(self, states) -> np.ndarray:
        """Argmax action index per state."""
        x = torch.as_tensor(np.asarray(states, dtype=np.float32))
        return self.actor(x).argmax(dim=-1).numpy().astype(np.int64)

    @torch.no_grad()
    def probabilities(self, states) -> np.ndarray:
        x = torch.as_tensor(np.asarray(states, dtype=np.float32))
        return torch.softmax(self.actor(x), dim=-1).numpy()
