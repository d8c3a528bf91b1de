"""The actor and the critic (CleanRL's ``layer_init`` and ``Agent``).

Two separate MLPs over the session state (384 inputs), each ``Linear-Tanh-Linear-Tanh-Linear``
with 64 hidden units: the actor gives one logit per action (no hint, then the accepted
hints), the critic one state value.  :mod:`.numpy_update` trains these very parameters.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def layer_init(layer: nn.Linear, std: float = math.sqrt(2), bias_const: float = 0.0) -> nn.Linear:
    """CleanRL's initialisation: orthogonal weights with gain ``std``, constant bias."""
    nn.init.orthogonal_(layer.weight, std)
    nn.init.constant_(layer.bias, bias_const)
    return layer


def make_actor(state_dim: int, n_actions: int, hidden: int = 64) -> nn.Sequential:
    """The policy network: state -> one logit per action (small last layer: near-uniform start)."""
    return nn.Sequential(
        layer_init(nn.Linear(state_dim, hidden)), nn.Tanh(),
        layer_init(nn.Linear(hidden, hidden)), nn.Tanh(),
        layer_init(nn.Linear(hidden, n_actions), std=0.01),
    )


def make_critic(state_dim: int, hidden: int = 64) -> nn.Sequential:
    """The value network: state -> expected reward of the current policy."""
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
        """(action, its log-probability, the policy's entropy, the state value) per state;
        samples the action unless one is given."""
        logits = self.actor(x)
        probs = torch.distributions.Categorical(logits=logits)
        if action is None:
            action = probs.sample()
        return action, probs.log_prob(action), probs.entropy(), self.get_value(x)

    @torch.no_grad()
    def greedy(self, x: torch.Tensor) -> torch.Tensor:
        """The argmax action per state (ties: the lowest index)."""
        return self.actor(x).argmax(dim=-1)
