"""ElmurBC: behaviour cloning of the ELMUR actor, checkpoints and resume, hand-over to ElmurPPO."""

import numpy as np
import pytest
import torch as th
from envs import RecallEnv
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy
from test_data import CueOracle

from sb3_elmur import ElmurBC, ElmurPPO
from sb3_elmur.bc import ElmurBC as BCFromItsModule
from sb3_elmur.bc import warmup_cosine
from sb3_elmur.data import collect_trajectories

ELMUR = {"d_model": 32, "n_layers": 1, "n_heads": 4, "segment_len": 4, "n_slots": 3}


def setup(length: int = 14, n_episodes: int = 64):
    env = make_vec_env(RecallEnv, n_envs=4, seed=0, env_kwargs={"length": length})
    data = collect_trajectories(env, CueOracle(), n_episodes)
    model = ElmurPPO("MlpElmurPolicy", env, seed=0, policy_kwargs={"elmur_kwargs": ELMUR, "net_arch": [32]})
    return env, data, model


def test_bc_learns_a_cue_recalled_several_chunks_later(tmp_path):
    """Length 14, K = 4, S = 2: the cue crosses a chunk boundary where memory is carried (detached)."""
    _, data, model = setup()
    trainer = ElmurBC(model, data, segments_per_sample=2, batch_size=32, learning_rate=2e-3, warmup_steps=5, seed=0,
                      tensorboard_log=str(tmp_path / "tb"))  # fmt: skip
    trainer.learn(60, progress_bar=False)
    success, _ = evaluate_policy(model, make_vec_env(RecallEnv, n_envs=4, seed=9, env_kwargs={"length": 14}), 32)
    assert success == 1.0
    assert list((tmp_path / "tb").glob("events.*"))


def test_checkpoint_resume_continues_identically(tmp_path):
    _, data, model_a = setup(n_episodes=16)
    trainer_a = ElmurBC(model_a, data, batch_size=8, seed=0)
    trainer_a.learn(6, progress_bar=False)
    trainer_a.save_checkpoint(tmp_path / "ckpt")
    _, _, model_b = setup(n_episodes=1)
    trainer_b = ElmurBC(model_b, data, batch_size=8, seed=123)
    trainer_b.resume(tmp_path / "ckpt")
    assert trainer_b.num_updates == 6
    for a, b in zip(model_a.policy.parameters(), model_b.policy.parameters(), strict=True):
        assert th.equal(a, b)
    assert trainer_b.optimizer.param_groups[0]["lr"] == trainer_a.optimizer.param_groups[0]["lr"]
    trainer_a.learn(10, progress_bar=False)
    trainer_b.learn(10, progress_bar=False)
    for a, b in zip(model_a.policy.parameters(), model_b.policy.parameters(), strict=True):
        assert th.allclose(a, b, atol=1e-6), "the resumed run continues exactly like the original"
    # The checkpointed model is an ElmurPPO zip that fine-tunes with PPO.
    loaded = ElmurPPO.load(tmp_path / "ckpt.zip", env=make_vec_env(RecallEnv, n_envs=2, env_kwargs={"length": 14}))
    loaded.learn(64)


def test_bc_rejects_data_that_does_not_fit_the_model():
    _, data, model = setup(n_episodes=4)
    data.actions = np.full_like(data.actions, 5)  # Discrete(2) has no action 5
    with pytest.raises(ValueError, match="outside the action space"):
        ElmurBC(model, data)


def test_warmup_then_cosine():
    factor = warmup_cosine(10, 110)
    assert factor(0) == pytest.approx(0.1) and factor(9) == pytest.approx(1.0)
    assert factor(60) == pytest.approx(0.5) and factor(110) == pytest.approx(0.0)


def test_elmur_bc_is_exported_at_the_top_level():
    assert ElmurBC is BCFromItsModule


def test_compile_backbone_routes_training_only_through_the_compiled_path(monkeypatch):
    """ElmurBC(compile_backbone=True) trains through the compiled forward; the model keeps its eager setting."""
    _, data, model = setup(n_episodes=8)
    policy = model.policy
    seen: list[bool] = []
    eager = policy.backbone.forward_towers

    def parallel_forward():
        seen.append(policy.compile_backbone)
        return eager  # what the compiled function computes, without paying for a compilation here

    monkeypatch.setattr(policy, "_parallel_forward", parallel_forward)
    ElmurBC(model, data, batch_size=4, seed=0, compile_backbone=True).learn(2, progress_bar=False)
    assert seen and all(seen)
    assert policy.compile_backbone == "auto", "the model's own setting is restored after training"
    seen.clear()
    ElmurBC(model, data, batch_size=4, seed=0).learn(2, progress_bar=False)  # "auto": eager while it times updates
    assert seen and not any(seen)
    with policy.compiled_training(True):
        assert policy.compile_backbone
        with pytest.raises(RuntimeError), policy.compiled_training(None):
            raise RuntimeError  # restored even when training fails
        assert policy.compile_backbone
    assert policy.compile_backbone == "auto"


@pytest.mark.parametrize("compile_seconds, compiles", [(0.0, True), (1e9, False)])
def test_auto_compile_times_eager_updates_then_compiles_only_where_it_pays(monkeypatch, capsys, compile_seconds, compiles):
    """compile_backbone="auto": the first updates run eagerly and are timed; the rest runs compiled only where
    compile_pays says the compilation is won back (here forced both ways through its cost)."""
    import sb3_elmur.bc.elmur_bc as elmur_bc
    import sb3_elmur.common.compilation as compilation

    _, data, model = setup(n_episodes=8)
    policy = model.policy
    seen: list[bool] = []
    eager = policy.backbone.forward_towers

    def parallel_forward():
        seen.append(bool(policy.compile_backbone))
        return eager

    monkeypatch.setattr(policy, "_parallel_forward", parallel_forward)
    monkeypatch.setattr(compilation, "COMPILE_SECONDS", compile_seconds)
    trainer = ElmurBC(model, data, batch_size=4, seed=0, compile_backbone="auto")
    trainer.learn(8, progress_bar=False)
    timed = elmur_bc.AUTO_TIMED_UPDATES + 1
    assert seen and len(seen) % 8 == 0, "every update ran the parallel path the same number of times"
    per_update = len(seen) // 8
    assert not any(seen[: timed * per_update]), "the timed updates are eager"
    assert all(flag is compiles for flag in seen[timed * per_update :])
    assert trainer.compile_backbone is compiles
    assert policy.compile_backbone == "auto", "the model keeps its own setting"
    out, err = capsys.readouterr()
    assert "compile_backbone='auto'" in err and not out, "the decision goes to stderr (stdout may carry a protocol)"


def test_compile_pays_weighs_the_eager_time_left_against_a_compilation():
    from sb3_elmur.bc import compile_pays
    from sb3_elmur.common.compilation import COMPILE_SECONDS, COMPILED_SPEEDUP

    # Break-even: COMPILE_SECONDS of compilation against the (1 - 1 / speedup) share of the eager time it saves.
    break_even = COMPILE_SECONDS / (1 - 1 / COMPILED_SPEEDUP)
    assert compile_pays(0.5, int(1.1 * break_even / 0.5)) and not compile_pays(0.5, int(0.9 * break_even / 0.5))
    assert not compile_pays(0.03, 2000), "the T-Maze protocol's 2000 updates of 30 ms stay eager"
    assert compile_pays(0.4, 2000), "POPGym's 2000 updates of 400 ms compile"
    with pytest.raises(ValueError, match="compile_backbone"):
        ElmurBC(setup(n_episodes=4)[2], setup(n_episodes=4)[1], compile_backbone="yes")


@pytest.mark.slow  # one compilation with gradient: a minute or two on a 2-core CPU with a cold cache
@pytest.mark.parametrize("pack", [True, False], ids=["packed-rows", "one-per-row"])
def test_compiled_bc_takes_the_steps_of_eager_bc(pack):
    """Packed rows go through the compilation with a symbolic batch size, one trajectory per row through the fixed one."""
    models = []
    for compiled in (False, True):
        _, data, model = setup(n_episodes=16)
        ElmurBC(model, data, batch_size=8, seed=0, compile_backbone=compiled, pack=pack).learn(5, progress_bar=False)
        models.append(model)
    policy = models[1].policy
    assert (policy._compiled_forward_any_batch if pack else policy._compiled_forward) is not None
    for a, b in zip(models[0].policy.parameters(), models[1].policy.parameters(), strict=True):
        assert th.allclose(a, b, atol=1e-4)


@pytest.mark.parametrize("bptt", [None, 1, 2], ids=["through-memory", "detached", "bptt-2"])
def test_packed_rows_give_the_loss_and_gradient_of_one_trajectory_per_row(bptt):
    """
    pack=True puts several T-Maze trajectories (2-14 steps: 1-4 blocks of K = 4, S = 3) into a row, each starting
    at a block with step 0: fewer rows, and the same loss and gradient as one trajectory per row (a trajectory
    that saw its neighbour's memory, or a detachment at another block, would change them).
    """
    from sb3_elmur.envs.tmaze import TMazeOracle, TMazeVecEnv

    env = TMazeVecEnv(4, corridor_length=(1, 12), seed=0)
    data = collect_trajectories(env, TMazeOracle(), 24)
    assert len(set(data.episode_lengths.tolist())) > 4
    episodes = np.arange(24)
    results = {}
    for pack in (False, True):
        kwargs = {"elmur_kwargs": {**ELMUR, "memory_bptt": bptt}, "net_arch": [32]}
        model = ElmurPPO("MlpElmurPolicy", env, seed=0, policy_kwargs=kwargs)
        trainer = ElmurBC(model, data, segments_per_sample=3, batch_size=24, learning_rate=0.0, seed=0, pack=pack)
        stats = trainer.train_step(episodes)
        grads = [p.grad.clone() for p in model.policy.parameters() if p.grad is not None]
        results[pack] = (len(trainer._rows(episodes)), stats["bc/nll"], grads)
    assert results[True][0] < results[False][0] == 24
    assert results[True][1] == pytest.approx(results[False][1], rel=1e-5)
    assert len(results[True][2]) == len(results[False][2])
    for packed, alone in zip(results[True][2], results[False][2], strict=True):
        assert th.allclose(packed, alone, atol=1e-6, rtol=1e-4)


def test_pack_rows_keeps_each_trajectory_inside_its_chunks():
    """Random sizes: no overlap, short trajectories inside one chunk at offsets on the unit grid, long ones at row starts."""
    from sb3_elmur.elmur import pack_rows

    rng = np.random.default_rng(0)
    for _ in range(200):
        chunk, sizes = int(rng.integers(1, 5)), rng.integers(1, 12, size=int(rng.integers(1, 30)))
        unit = int(rng.integers(1, chunk + 1))
        rows = pack_rows(sizes, chunk, unit)
        n_chunks = -(-int(sizes.max()) // chunk)
        assert sorted(i for row in rows for i, _ in row) == list(range(len(sizes)))
        assert len(rows) <= len(sizes)
        for row in rows:
            taken = np.zeros(n_chunks * chunk, dtype=int)
            for i, first in row:
                taken[first : first + sizes[i]] += 1
                if sizes[i] > chunk:
                    assert first == 0
                else:
                    assert first // chunk == (first + sizes[i] - 1) // chunk and (first % chunk) % unit == 0
            assert taken.max() == 1 and len(taken) == n_chunks * chunk
