"""The PPO update as it runs in training: forward, backward and Adam written out in numpy.

Spec: :mod:`.ppo_loss`.  This module computes exactly :func:`.ppo_loss.reference_update` --
the clipped surrogate with the entropy bonus for the actor, half the squared error for the
critic, ``clip_grad_norm_`` and ``torch.optim.Adam`` for each -- with the gradients derived
by hand; ``tests/test_agent.py::test_numpy_update_equals_autograd_reference`` checks that
both give the same parameters.  Read :mod:`.ppo_loss` first.

Why by hand.  The networks are tiny (two 64-unit tanh layers over 384 inputs), so PyTorch's
per-operation overhead, not arithmetic, would dominate a textbook autograd update (measured
here: ~650 env steps/s for the whole loop, and ``benchmarks/bench_ppo.py`` (c)).
:class:`ManualMLP` keeps the parameters in preallocated buffers that *are* the parameters of
the ``nn.Module`` networks (the biases live in an extra weight column) and runs the
arithmetic on numpy views of them.  Kernels run single-threaded (:func:`single_threaded`):
at these sizes BLAS threads only contend, and running the actor's and the critic's epochs
on two Python threads gained nothing measurable (the GIL serialises their many small
operations).
"""

from __future__ import annotations

import contextlib
import math

import numpy as np
import torch
from torch import nn

from re2llm_tui.utilization.agent.config import PPOConfig

_HAS_FUSED_ADAM = hasattr(torch, "_fused_adam_")


class ManualMLP:
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


def log_softmax_cols(z: np.ndarray) -> np.ndarray:
    """Column-wise log-softmax of ``[A, m]`` logits."""
    shifted = z - z.max(axis=0)
    shifted -= np.log(np.exp(shifted).sum(axis=0))
    return shifted


class Minibatch:
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


def actor_epochs(mlp: ManualMLP, schedule: list[Minibatch], cfg: PPOConfig, frac: float,
                 reuse_first: bool, stats: dict | None) -> None:
    """The actor's epochs: the policy loss of :func:`.ppo_loss.ppo_losses` (clipped
    surrogate + entropy bonus), differentiated by hand, then clipping and Adam.

    With ``logp = log_softmax(z)``, ``p = exp(logp)``, entropy ``H = -sum(p logp)`` and the
    chosen action ``a``: ``dL/dz = dlogp_a * (onehot_a - p) + ent_coef/m * p * (logp + H)``,
    where ``dlogp_a = -A/m * ratio`` on the unclipped branch and 0 on the clipped one.

    ``schedule`` lists the minibatches of all epochs in order; ``reuse_first``: the first is
    the rollout's batch, whose forward pass is still in the buffers.  ``stats`` (when not
    None) gets the ``losses/*`` scalars of the last minibatch.
    """
    last = len(schedule) - 1
    for k, mb in enumerate(schedule):
        b = mlp.buffers(mb.m)
        logits = b["out"] if (k == 0 and reuse_first) else mlp.forward(mb.xa, b)
        ecm = np.float32(cfg.ent_coef / mb.m)
        logp = log_softmax_cols(logits)
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


def _record_actor_stats(stats, logp, p, logratio, ratio, mb: Minibatch, cfg: PPOConfig) -> None:
    """CleanRL's diagnostics of the last minibatch (before its step); ``losses/policy`` is
    the clipped surrogate without the entropy bonus."""
    c = cfg.clip_coef
    pg = np.maximum(-mb.adv * ratio, -mb.adv * np.clip(ratio, 1 - c, 1 + c)).mean()
    stats["losses/policy"] = float(pg)
    stats["losses/entropy"] = float(-(p * logp).sum(axis=0).mean())
    stats["losses/approx_kl"] = float(((ratio - 1) - logratio).mean())
    stats["losses/clipfrac"] = float((np.abs(ratio - 1) > c).mean())


def critic_epochs(mlp: ManualMLP, schedule: list[Minibatch], frac: float,
                  reuse_first: bool, stats: dict | None) -> None:
    """The critic's epochs: the value loss of :func:`.ppo_loss.ppo_losses`,
    ``0.5 * mean((v - R)^2)``, so ``dL/dv = (v - R) / m``; then clipping and Adam."""
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

