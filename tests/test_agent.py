"""The PPO retrieval agent on reward tables (no LLM): the hand-written numpy update
(``agent/numpy_update.py``) equals the autograd spec (``agent/ppo_loss.py``), it learns which
hint helps which session, it is deterministic under a seed, a resumed run continues the same
curve, and a checkpoint for another KB version is refused."""

from __future__ import annotations

import copy
import threading
import time

import numpy as np
import pytest
import torch

from re2llm_tui.errors import UserError
from re2llm_tui.utilization import agent as ag
from re2llm_tui.utilization import rewards
from re2llm_tui.utilization.agent import (
    ActorCritic,
    Control,
    KBVersionMismatch,
    Policy,
    PPOConfig,
    PPOTrainer,
    numpy_update,
    ppo_loss,
)
from re2llm_tui.utilization.rewards import PrefilledTable, RewardFunction, RewardTable

NON_DETERMINISTIC = {"charts/steps_per_s"}


def problem(n=60, d=24, n_actions=6, seed=0):
    """States in two clusters; hint 3 helps cluster A, hint 5 helps cluster B, hint 1 hurts."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(2, d))
    cluster = np.arange(n) % 2
    states = (centers[cluster] + 0.3 * rng.normal(size=(n, d))).astype(np.float32)
    table = np.zeros((n, n_actions), np.float32)
    table[:, 1] = -0.4
    table[cluster == 0, 3] = 0.5
    table[cluster == 1, 5] = 0.5
    table[:, 2] = 0.1
    return states, table


def run(states, table, log=None, **cfg):
    cfg = PPOConfig(**{"total_steps": 4096, "log_every": 512, **cfg})
    trainer = PPOTrainer(states, RewardTable(table), cfg, kb_version="kb-test",
                         hint_ids=list(range(table.shape[1])))
    seen = [] if log is None else log
    trainer.train(on_scalars=lambda step, sc: seen.append((step, copy.deepcopy(sc))))
    return trainer, seen


def curve(log):
    return [(step, {k: v for k, v in sc.items() if k not in NON_DETERMINISTIC}) for step, sc in log]


def params(trainer):
    return {k: v.clone() for k, v in trainer.agent.state_dict().items()}


# --------------------------------------------------------------------------- the update

@pytest.mark.parametrize("minibatch,max_norm", [(32, 0.5), (8, 100.0), (16, 0.05)])
def test_numpy_update_equals_autograd_reference(minibatch, max_norm):
    """numpy_update (forward, backward, clipping and Adam by hand) == ppo_loss's
    reference_update (autograd + clip_grad_norm_ + torch.optim.Adam)."""
    rng = np.random.default_rng(1)
    states = rng.normal(size=(40, 12)).astype(np.float32)
    table = rng.normal(size=(40, 5)).astype(np.float32)
    cfg = PPOConfig(total_steps=32 * 4, minibatch_size=minibatch, max_grad_norm=max_norm, seed=7)
    with numpy_update.single_threaded():
        _compare_with_reference(states, table, cfg, minibatch)


def _compare_with_reference(states, table, cfg, minibatch):
    tr = PPOTrainer(states, RewardTable(table), cfg)
    ref = ActorCritic(states.shape[1], table.shape[1], cfg.hidden, seed=cfg.seed)
    for (name, a), b in zip(tr.agent.state_dict().items(), ref.state_dict().values()):
        assert torch.equal(a, b), name
    opts = ppo_loss.make_reference_optimizers(ref, cfg)
    for _ in range(4):
        frac = 1.0 - tr.update / cfg.num_updates
        batch = tr._rollout()
        x = torch.from_numpy(batch.xa[:, :-1].copy())
        with torch.no_grad():
            _, logp, _, value = ref.get_action_and_value(x, torch.from_numpy(batch.actions))
        assert np.allclose(logp.numpy(), batch.logprobs, atol=1e-5)
        assert np.allclose(value.numpy(), batch.returns - batch.adv_raw, atol=1e-5)
        rng_state = copy.deepcopy(tr.rng.bit_generator.state)
        schedule, reuse = tr._schedule(batch)
        order = None
        if minibatch != cfg.batch_size:   # replay the trainer's minibatch shuffles
            replay = np.random.default_rng()
            replay.bit_generator.state = rng_state
            order = [list(p[s:s + minibatch]) for p in
                     (replay.permutation(cfg.batch_size) for _ in range(cfg.update_epochs))
                     for s in range(0, cfg.batch_size, minibatch)]
        numpy_update.critic_epochs(tr.critic_mlp, schedule, frac, reuse, None)
        numpy_update.actor_epochs(tr.actor_mlp, schedule, cfg, frac, reuse, None)
        tr.update += 1
        ppo_loss.reference_update(ref, opts, {"x": x, "actions": torch.from_numpy(batch.actions),
                                              "logprobs": torch.from_numpy(batch.logprobs),
                                              "advantages": torch.from_numpy(batch.adv_raw),
                                              "returns": torch.from_numpy(batch.returns)},
                                  cfg, frac, order)
        for (name, a), b in zip(tr.agent.state_dict().items(), ref.state_dict().values()):
            assert torch.allclose(a, b, atol=2e-6, rtol=1e-4), name
    # the updates really moved the parameters
    fresh = ActorCritic(states.shape[1], table.shape[1], cfg.hidden, seed=cfg.seed)
    moved = max(float((a - b).abs().max()) for a, b in
                zip(tr.agent.state_dict().values(), fresh.state_dict().values()))
    assert moved > 1e-4


def test_defaults_are_the_release_hyperparameters():
    cfg = PPOConfig()
    assert (cfg.hidden, cfg.actor_lr, cfg.critic_lr, cfg.clip_coef, cfg.update_epochs,
            cfg.batch_size, cfg.minibatch_size, cfg.ent_coef, cfg.max_grad_norm) == \
        (64, 3e-4, 3e-4, 0.05, 10, 32, 32, 0.01, 0.5)
    assert cfg.anneal_lr and cfg.norm_adv
    net = ActorCritic(384, 21)
    assert [type(m).__name__ for m in net.actor] == ["Linear", "Tanh", "Linear", "Tanh", "Linear"]
    assert net.actor[0].out_features == 64 and net.critic[4].out_features == 1
    w = net.actor[2].weight.detach()
    # orthogonal init with gain sqrt(2): W W^T = 2 I
    assert torch.allclose(w @ w.T, 2 * torch.eye(64), atol=1e-4)


# --------------------------------------------------------------------------- learning

def test_agent_learns_the_helpful_hint_per_session():
    states, table = problem()
    trainer, log = run(states, table, total_steps=12_288)
    random_policy = float(table.mean())
    best_single = float(table.mean(axis=0).max())
    greedy = trainer.evaluate()
    assert log[0][1]["charts/reward_mean"] < log[-1][1]["charts/reward_mean"]
    assert log[-1][1]["charts/reward_mean"] > random_policy + 0.2
    # state-dependent: better than any single hint for everyone (0.25)
    assert greedy > best_single + 0.15
    acts = trainer.greedy_actions()
    cluster = np.arange(len(states)) % 2
    assert (acts[cluster == 0] == 3).mean() > 0.9 and (acts[cluster == 1] == 5).mean() > 0.9
    # the histogram follows: the harmful hint is (almost) never chosen at the end
    hist = log[-1][1]["charts/action_hist"]
    assert sum(hist) == log[-1][0] - log[-2][0] and hist[1] < 0.05 * sum(hist)


def test_reports_carry_the_namespaced_scalars():
    states, table = problem(n=20)
    _, log = run(states, table, total_steps=1024, log_every=256)
    assert [s for s, _ in log] == [256, 512, 768, 1024]
    for _, sc in log:
        assert set(ag.SCALAR_TAGS) <= set(sc)
        assert len(sc["charts/action_hist"]) == table.shape[1]
        assert sc["charts/steps_per_s"] > 0 and sc["losses/entropy"] > 0
        assert sc["charts/llm_calls"] == 0
    assert log[-1][1]["charts/learning_rate"] < log[0][1]["charts/learning_rate"]  # annealed
    assert log[-1][1]["charts/episode"] == pytest.approx(1024 / 20)


# --------------------------------------------------------------------------- determinism

def test_same_seed_same_run():
    states, table = problem(n=30)
    a, log_a = run(states, table, total_steps=2048, seed=5)
    b, log_b = run(states, table, total_steps=2048, seed=5)
    assert curve(log_a) == curve(log_b)
    pa, pb = params(a), params(b)
    assert all(torch.equal(pa[k], pb[k]) for k in pa)
    _, log_c = run(states, table, total_steps=2048, seed=6)
    assert curve(log_c) != curve(log_a)


def test_training_leaves_global_rng_and_threads_alone():
    states, table = problem(n=10)
    torch.manual_seed(123)
    before = torch.get_rng_state().clone()
    threads = torch.get_num_threads()
    run(states, table, total_steps=256)
    assert torch.equal(torch.get_rng_state(), before)
    assert torch.get_num_threads() == threads


# --------------------------------------------------------------------------- checkpoints

def test_resume_from_checkpoint_continues_the_same_curve(tmp_path):
    states, table = problem(n=30)
    full, log_full = run(states, table, total_steps=4096, log_every=512)

    ck = tmp_path / "agent.pt"
    cfg = PPOConfig(total_steps=4096, log_every=512)
    first = PPOTrainer(states, RewardTable(table), cfg, kb_version="kb-test",
                       hint_ids=list(range(6)))
    control = Control()
    log_a = []

    def stop_after_three(step, sc):
        log_a.append((step, copy.deepcopy(sc)))
        if len(log_a) == 3:
            control.stop.set()

    out = first.train(on_scalars=stop_after_three, control=control, checkpoint_path=ck)
    assert out.status == "stopped" and out.step == 3 * 512 and ck.is_file()

    second = PPOTrainer.load(ck, states, RewardTable(table), kb_version="kb-test",
                             hint_ids=list(range(6)))
    assert second.step == 3 * 512
    log_b = []
    assert second.train(on_scalars=lambda s, sc: log_b.append((s, copy.deepcopy(sc)))).status == "done"
    assert curve(log_a + log_b) == curve(log_full)
    p1, p2 = params(full), params(second)
    assert all(torch.equal(p1[k], p2[k]) for k in p1)


def test_a_stop_mid_window_and_a_reward_failure_resume_exactly(tmp_path):
    """A reward source that fails (e.g. a budget stop) mid-run: the checkpoint rewinds the
    unfinished batch, and the resumed run still matches the uninterrupted one."""
    states, table = problem(n=30)
    _, log_full = run(states, table, total_steps=2048, log_every=512)

    class Flaky(RewardTable):
        calls = 0

        def rewards(self, s, a):
            Flaky.calls += 1
            if Flaky.calls == 23:      # not at a report boundary
                raise RuntimeError("budget")
            return super().rewards(s, a)

    ck = tmp_path / "agent.pt"
    cfg = PPOConfig(total_steps=2048, log_every=512)
    first = PPOTrainer(states, Flaky(table), cfg, kb_version="kb-test", hint_ids=list(range(6)))
    log_a = []
    with pytest.raises(RuntimeError, match="budget"):
        first.train(on_scalars=lambda s, sc: log_a.append((s, copy.deepcopy(sc))),
                    checkpoint_path=ck)
    second = PPOTrainer.load(ck, states, RewardTable(table), kb_version="kb-test",
                             hint_ids=list(range(6)))
    assert 0 < second.step < 2048 and second.step % 512     # rewound to mid-window
    log_b = []
    second.train(on_scalars=lambda s, sc: log_b.append((s, copy.deepcopy(sc))))
    assert curve(log_a + log_b) == curve(log_full)


def test_checkpoint_for_another_kb_version_is_refused(tmp_path):
    states, table = problem(n=10)
    trainer = PPOTrainer(states, RewardTable(table), PPOConfig(total_steps=64),
                         kb_version="kb-aaaa", hint_ids=[0, 1, 2, 3, 4, 5])
    trainer.train(checkpoint_path=tmp_path / "a.pt")
    with pytest.raises(KBVersionMismatch) as exc:
        PPOTrainer.load(tmp_path / "a.pt", states, RewardTable(table), kb_version="kb-bbbb",
                        hint_ids=[0, 1, 2, 3, 4, 7])
    msg = str(exc.value)
    assert isinstance(exc.value, UserError) and "\n" not in msg
    assert "kb-aaaa" in msg and "kb-bbbb" in msg
    with pytest.raises(KBVersionMismatch):
        Policy.load(tmp_path / "a.pt", kb_version="kb-bbbb")
    # the same version loads, for training and for inference
    PPOTrainer.load(tmp_path / "a.pt", states, RewardTable(table), kb_version="kb-aaaa",
                    hint_ids=[0, 1, 2, 3, 4, 5])
    policy = Policy.load(tmp_path / "a.pt", kb_version="kb-aaaa")
    assert list(policy.act(states)) == list(trainer.greedy_actions())
    assert policy.probabilities(states).shape == (10, 6)


def test_checkpoint_for_other_sessions_or_a_foreign_file_is_refused(tmp_path):
    states, table = problem(n=10)
    trainer = PPOTrainer(states, RewardTable(table), PPOConfig(total_steps=64))
    trainer.save(tmp_path / "a.pt")
    with pytest.raises(UserError, match="other sessions"):
        PPOTrainer.load(tmp_path / "a.pt", states + 1, RewardTable(table), kb_version="")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="unreadable"):
        Policy.load(tmp_path / "junk.pt")
    with pytest.raises(UserError, match="not found"):
        Policy.load(tmp_path / "missing.pt")


# --------------------------------------------------------------------------- control

def test_pause_holds_and_stop_ends_the_loop():
    states, table = problem(n=20)
    trainer = PPOTrainer(states, RewardTable(table), PPOConfig(total_steps=10**7, log_every=64))
    control = Control()
    steps = []
    th = threading.Thread(target=lambda: steps.append(trainer.train(control=control)))
    th.start()
    time.sleep(0.3)
    control.pause.set()
    time.sleep(0.2)
    at_pause = trainer.step
    time.sleep(0.3)
    assert trainer.step == at_pause > 0
    control.pause.clear()
    time.sleep(0.3)
    assert trainer.step > at_pause
    control.stop.set()
    th.join(5)
    assert not th.is_alive() and steps[0].status == "stopped"


# --------------------------------------------------------------------------- reward sources

def test_reward_function_is_called_once_per_pair():
    calls = []

    def reward(s, a):
        calls.append((s, a))
        return float(a == s % 3)

    src = RewardFunction(reward, n_sessions=12, n_actions=3)
    trainer = PPOTrainer(np.eye(12, dtype=np.float32), src, PPOConfig(total_steps=2048))
    trainer.train()
    assert len(calls) == len(set(calls)) <= 12 * 3
    assert src.stats()["llm_calls"] == len(calls)
    assert src.stats()["cache_hits"] == 2048 + trainer.n_sessions * (2048 // 1024) - len(calls)


def test_bad_inputs_are_one_line_user_errors():
    states, table = problem(n=10)
    with pytest.raises(UserError, match="multiple"):
        PPOTrainer(states, RewardTable(table), PPOConfig(batch_size=32, minibatch_size=10))
    with pytest.raises(UserError, match="total_steps"):
        PPOTrainer(states, RewardTable(table), PPOConfig(total_steps=0))
    with pytest.raises(UserError, match="covers"):
        PPOTrainer(states[:5], RewardTable(table), PPOConfig())
    with pytest.raises(UserError, match="non-finite"):
        RewardTable(np.full((3, 3), np.nan))
    with pytest.raises(UserError, match="hint ids"):
        PPOTrainer(states, RewardTable(table), PPOConfig(), hint_ids=[0, 1])


def test_prefilled_table_reports_the_llm_stats_plus_its_lookups():
    class Filled:
        def stats(self):
            return {"llm_calls": 7, "cache_hits": 2, "cost": 0.5}

    table = np.arange(12, dtype=np.float32).reshape(4, 3)
    src = PrefilledTable(table, Filled())
    assert (src.n_sessions, src.n_actions) == (4, 3)
    assert list(src.rewards(np.array([0, 3, 1]), np.array([2, 0, 1]))) == [2.0, 9.0, 4.0]
    assert src.stats() == {"llm_calls": 7, "cache_hits": 2 + 3, "cost": 0.5}
    with pytest.raises(UserError, match="non-finite"):
        PrefilledTable(np.full((2, 2), np.nan), Filled())


def test_the_agent_package_keeps_the_single_module_names():
    """Callers of the former agent.py keep working: the reward sources (now in rewards.py),
    Control and the private names are still importable from the agent package."""
    assert ag.RewardTable is rewards.RewardTable and ag.RewardSource is rewards.RewardSource
    assert ag.RewardFunction is rewards.RewardFunction
    assert ag.reference_update is ppo_loss.reference_update
    assert ag._actor_epochs is numpy_update.actor_epochs
    for name in ("CHECKPOINT_FORMAT", "SCALAR_TAGS", "Control", "StopRequested", "ppo_losses",
                 "layer_init", "make_actor", "make_critic", "read_checkpoint", "check_kb_version",
                 "states_fingerprint", "TrainOutcome", "single_threaded", "_ManualMLP",
                 "_Minibatch", "_critic_epochs", "_log_softmax_cols", "_record_actor_stats",
                 "_rng_state_to_plain", "_HAS_FUSED_ADAM"):
        assert hasattr(ag, name), name
