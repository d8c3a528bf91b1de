"""Agent checkpoints: what a training run saves, reading it back, the KB-version check, and
the trained :class:`Policy` for inference.

A checkpoint (``torch.save`` of plain tensors, str and int: it loads with
``weights_only=True``) holds the config, the networks, both Adam states, the RNG state, the
step, the position in the shuffled sessions, the unreported window and the KB version +
hint ids of the action list.  A checkpoint made for another action list is refused
(:class:`KBVersionMismatch`): its action indices would name other hints.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from re2llm_tui.errors import UserError
from re2llm_tui.utilization.agent.config import PPOConfig
from re2llm_tui.utilization.agent.networks import make_actor

CHECKPOINT_FORMAT = "re2llm-ppo-v1"


class KBVersionMismatch(UserError):
    """A checkpoint was trained on another action list (KB version) than the current one."""


# --------------------------------------------------------------------------- writing

def trainer_state(trainer) -> dict:
    """Everything a resumed run needs to continue the same curve (``trainer``: a
    :class:`~re2llm_tui.utilization.agent.trainer.PPOTrainer`, which imports this module)."""
    return {
        "format": CHECKPOINT_FORMAT,
        "config": asdict(trainer.cfg),
        "kb_version": trainer.kb_version,
        "hint_ids": list(trainer.hint_ids),
        "n_sessions": trainer.n_sessions,
        "state_dim": trainer.state_dim,
        "n_actions": trainer.n_actions,
        "states_fingerprint": trainer.fingerprint,
        "actor": {k: v.clone() for k, v in trainer.agent.actor.state_dict().items()},
        "critic": {k: v.clone() for k, v in trainer.agent.critic.state_dict().items()},
        "actor_adam": trainer.actor_mlp.state(),
        "critic_adam": trainer.critic_mlp.state(),
        "rng": _rng_state_to_plain(trainer.rng.bit_generator.state),
        "step": trainer.step,
        "update": trainer.update,
        "episodes_done": trainer.episodes_done,
        "perm": torch.from_numpy(np.asarray(trainer.perm, dtype=np.int64).copy()),
        "pos": trainer.pos,
        "window": {"reward": trainer.win_reward, "steps": trainer.win_steps,
                   "actions": torch.from_numpy(trainer.win_actions.copy()),
                   "time": trainer.win_time},
        "next_log": trainer.next_log,
        "next_eval": trainer.next_eval,
        "last_eval": trainer.last_eval,
    }


def write_checkpoint(ck: dict, path: str | os.PathLike, workspace=None) -> Path:
    """Write a checkpoint atomically (temp file in its folder, fsync, rename); never onto
    ``workspace``, its side files or an SQLite file (a one-line :class:`UserError`)."""
    from re2llm_tui.safe_files import atomic_file

    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"checkpoint folder {path.parent}: cannot create it "
                        f"({exc.strerror or exc})") from None
    with atomic_file(path, workspace, what="checkpoint") as f:
        torch.save(ck, f)
    return path


def _rng_state_to_plain(state: dict) -> dict:
    """numpy's bit-generator state as plain str/int dicts (loadable with weights_only)."""
    return {k: (_rng_state_to_plain(v) if isinstance(v, dict) else
                (int(v) if isinstance(v, (int, np.integer)) else v)) for k, v in state.items()}


# --------------------------------------------------------------------------- reading

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


def resumed_config(ck: dict, config: PPOConfig | None) -> PPOConfig:
    """The checkpoint's config; ``config`` may change only ``total_steps``, ``log_every``
    and ``eval_every``."""
    saved = PPOConfig.from_dict(ck["config"])
    if config is not None:
        for name in ("total_steps", "log_every", "eval_every"):
            setattr(saved, name, getattr(config, name))
    return saved


def restore_trainer_state(trainer, ck: dict, where: str = "checkpoint") -> None:
    """Put a checkpoint's state into a trainer built on the same sessions and actions."""
    if trainer.fingerprint != ck["states_fingerprint"]:
        raise UserError(f"{where} was trained on other sessions/states "
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


# --------------------------------------------------------------------------- inference

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
             hint_ids: Sequence[int] | None = None) -> Policy:
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
