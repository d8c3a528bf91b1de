"""The retrieval agent of Re2LLM's Reinforcement Utilization: PPO over the hint list.

State: a session vector (the mean item embedding, :mod:`re2llm_tui.utilization.session_encoder`).
Action: an index into the KB's action list (0 = no hint, then the accepted hints by id).
Reward: ``r(s, h)`` from a reward source (:mod:`re2llm_tui.utilization.rewards`).  Every
episode is a single step (one session gets one hint).

The modules, read in this order, against CleanRL's one-file ``cleanrl/ppo.py``:

- ``config`` -- :class:`PPOConfig`, the documented hyperparameters (``@dataclass Args``);
- ``networks`` -- ``layer_init``, the actor and the critic, :class:`ActorCritic`
  (``layer_init``, ``Agent.get_action_and_value``);
- ``ppo_loss`` -- the clipped PPO loss with autograd, the readable spec, and
  :func:`reference_update` with torch optimisers (the loss in CleanRL's update loop);
- ``numpy_update`` -- the same update written out by hand in numpy, what training runs
  (~10x faster at these sizes; a test checks it against ``ppo_loss``);
- ``trainer`` -- :class:`PPOTrainer`: seeding, rollout, advantages, the epochs loop, reports
  with namespaced scalars (:data:`SCALAR_TAGS`; CleanRL's main loop and ``SummaryWriter``);
- ``checkpoints`` -- save / load / read, the KB-version check, :class:`Policy` for inference.

Every name of the former single-module ``agent.py`` is importable from here, the reward
sources (now in :mod:`re2llm_tui.utilization.rewards`) and ``Control`` included.
"""

# pause/stop flags a trainer answers between updates (one class for the whole project)
from re2llm_tui.control import Control, StopRequested
from re2llm_tui.utilization.agent import checkpoints, numpy_update
from re2llm_tui.utilization.agent.checkpoints import (
    CHECKPOINT_FORMAT,
    KBVersionMismatch,
    Policy,
    check_kb_version,
    read_checkpoint,
)
from re2llm_tui.utilization.agent.config import PPOConfig
from re2llm_tui.utilization.agent.networks import (
    ActorCritic,
    layer_init,
    make_actor,
    make_critic,
)
from re2llm_tui.utilization.agent.numpy_update import (
    ManualMLP,
    Minibatch,
    actor_epochs,
    critic_epochs,
    log_softmax_cols,
    single_threaded,
)
from re2llm_tui.utilization.agent.ppo_loss import (
    make_reference_optimizers,
    ppo_losses,
    reference_update,
)
from re2llm_tui.utilization.agent.trainer import (
    SCALAR_TAGS,
    PPOTrainer,
    ScalarCallback,
    TrainOutcome,
    states_fingerprint,
)
from re2llm_tui.utilization.rewards import RewardFunction, RewardSource, RewardTable

# the private names of the single-module agent.py, for callers that reached for them
_ManualMLP, _Minibatch = ManualMLP, Minibatch
_actor_epochs, _critic_epochs, _log_softmax_cols = actor_epochs, critic_epochs, log_softmax_cols
_record_actor_stats = numpy_update._record_actor_stats
_HAS_FUSED_ADAM = numpy_update._HAS_FUSED_ADAM
_rng_state_to_plain = checkpoints._rng_state_to_plain

__all__ = [
    "CHECKPOINT_FORMAT", "SCALAR_TAGS", "ActorCritic", "Control", "KBVersionMismatch",
    "ManualMLP", "Minibatch", "PPOConfig", "PPOTrainer", "Policy", "RewardFunction",
    "RewardSource", "RewardTable", "ScalarCallback", "StopRequested", "TrainOutcome",
    "actor_epochs", "check_kb_version", "critic_epochs", "layer_init", "log_softmax_cols",
    "make_actor", "make_critic", "make_reference_optimizers", "ppo_losses", "read_checkpoint",
    "reference_update", "single_threaded", "states_fingerprint",
]
