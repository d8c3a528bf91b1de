"""The retrieval agent of Re2LLM's Reinforcement Utilization: PPO over the hint list.

(Being split into modules; for now everything lives in :mod:`.trainer`.)
"""

from re2llm_tui.utilization.agent.trainer import (  # noqa: F401
    _HAS_FUSED_ADAM,
    CHECKPOINT_FORMAT,
    SCALAR_TAGS,
    ActorCritic,
    Control,
    KBVersionMismatch,
    Policy,
    PPOConfig,
    PPOTrainer,
    RewardFunction,
    RewardSource,
    RewardTable,
    ScalarCallback,
    StopRequested,
    TrainOutcome,
    _actor_epochs,
    _critic_epochs,
    _log_softmax_cols,
    _ManualMLP,
    _Minibatch,
    _record_actor_stats,
    _rng_state_to_plain,
    check_kb_version,
    layer_init,
    make_actor,
    make_critic,
    make_reference_optimizers,
    ppo_losses,
    read_checkpoint,
    reference_update,
    single_threaded,
    states_fingerprint,
)
