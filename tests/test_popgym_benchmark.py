"""The POPGym benchmark harness (benchmarks/popgym_benchmark.py) and the registry of models (sb3_elmur.registry)."""

import csv
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch as th
from gymnasium import spaces

pytest.importorskip("popgym")

from popgym_experts import play_episode
from stable_baselines3.common.vec_env import DummyVecEnv

from sb3_elmur import registry
from sb3_elmur.envs.popgym import POPGYM_IDS, category, make_popgym_env
from sb3_elmur.registry import Agent, TrainingInputs, get_model, list_models, register_model

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import popgym_benchmark as bench

TASKS = ["popgym-RepeatPreviousEasy-v0", "popgym-CountRecallEasy-v0"]
TINY = ["--episodes", "6", "--updates", "2", "--eval-episodes", "4", "--workers", "0", "--set", "*.batch_size=4"]


def vec_env(env_id: str, one_hot: bool = False, n: int = 1) -> DummyVecEnv:
    return DummyVecEnv([lambda: make_popgym_env(env_id, one_hot=one_hot) for _ in range(n)])


# ---------------------------------------------------------------------------------------------------- registry
def test_registry_entries():
    assert list_models("offline") == ["elmur", "bc-lstm", "bc-mlp", "random"]
    assert list_models("online") == ["elmur-ppo", "recurrent-ppo", "ppo-mlp"]
    assert list_models("reference", family="popgym") == ["expert"]
    # Entries made for another family (such as the MIKASA expert, once sb3_elmur.envs.mikasa is imported) are left out.
    assert "expert" not in list_models("reference", family="mikasa")
    with pytest.raises(KeyError, match="bc-lstm"):
        get_model("bc-lstn")
    with pytest.raises(ValueError, match="registered already"):
        register_model("elmur", "x", "offline", registry.build_random)
    with pytest.raises(ValueError, match="kind"):
        register_model("new-model", "x", "offfline", registry.build_random)  # type: ignore[arg-type]


@pytest.mark.parametrize("env_id", ["popgym-CountRecallEasy-v0", "popgym-BattleshipEasy-v0"])
def test_registry_builds_every_entry(env_id):
    """Every entry builds on a POPGym env (MultiDiscrete observations; Discrete and MultiDiscrete actions) and acts."""
    parameters = {}
    for name in list_models(family="popgym"):
        entry = get_model(name)
        env = vec_env(env_id, entry.one_hot, n=2)
        agent = entry.build(env, seed=0, overrides={"env_id": env_id})
        assert isinstance(agent, Agent)
        json.dumps(agent.settings)  # recorded with every result
        observations = env.reset()
        actions, _ = agent.model.predict(observations, state=None, episode_start=np.ones(2, bool), deterministic=True)
        assert len(actions) == 2
        assert all(env.action_space.contains(np.asarray(a).astype(env.action_space.dtype)) for a in actions)
        parameters[name] = agent.n_parameters
    # Comparable sizes: ELMUR and the LSTM baselines within 25 % (offline and online).
    assert 0.8 < parameters["elmur"] / parameters["bc-lstm"] < 1.25
    assert 0.8 < parameters["elmur-ppo"] / parameters["recurrent-ppo"] < 1.25


def test_registry_overrides():
    env = vec_env("popgym-CountRecallEasy-v0")
    agent = get_model("elmur").build(env, 0, {"updates": 7, "elmur_kwargs": {"n_slots": 2}, "env_id": "x"})
    assert agent.settings["updates"] == 7
    assert agent.model.policy.backbone.config.n_slots == 2
    assert agent.settings["segment_len"] == agent.model.policy.backbone.config.segment_len
    with pytest.raises(ValueError, match=r"Unknown overrides.*'updatez'"):
        get_model("bc-mlp").build(env, 0, {"updatez": 7})
    with pytest.raises(ValueError, match="dataset"):
        get_model("bc-mlp").build(env, 0).fit(TrainingInputs())


def test_set_values_are_json_or_python_literals():
    values = ["*.normalize_observations=False", "elmur.pack=True", "elmur.updates=5", 'elmur.elmur_kwargs={"n_slots": 2}']
    values += ["bc-mlp.normalize_observations=true", "bc-mlp.tensorboard_log=None", "bc-lstm.tensorboard_log=runs/x"]
    parsed = bench.parse_overrides(values)
    assert parsed["*"] == {"normalize_observations": False}, "not the true string 'False'"
    assert parsed["elmur"] == {"pack": True, "updates": 5, "elmur_kwargs": {"n_slots": 2}}
    assert parsed["bc-mlp"] == {"normalize_observations": True, "tensorboard_log": None}
    assert parsed["bc-lstm"] == {"tensorboard_log": "runs/x"}
    with pytest.raises(ValueError, match=r"model\.key=value"):
        bench.parse_overrides(["elmur.updates"])


# ---------------------------------------------------------------------------------------------------- tasks, data
def test_select_tasks():
    assert bench.select_tasks(["all"]) == list(POPGYM_IDS)
    assert len(bench.select_tasks(["Easy"])) == 16
    assert bench.select_tasks(["CountRecall"]) == [f"popgym-CountRecall{d}-v0" for d in ("Easy", "Medium", "Hard")]
    assert len(bench.select_tasks(["reactive"])) == 15 and len(bench.select_tasks(["puzzle"])) == 33
    assert bench.select_tasks(["CountRecallEasy", "popgym-CountRecallEasy-v0"]) == ["popgym-CountRecallEasy-v0"]
    with pytest.raises(ValueError, match="did you mean popgym-CountRecallEasy-v0"):
        bench.select_tasks(["CountRecalEasy"])


@pytest.mark.parametrize(
    "env_id",
    ["popgym-AutoencodeEasy-v0", "popgym-CountRecallEasy-v0", "popgym-BattleshipEasy-v0", "popgym-MineSweeperEasy-v0"],
)
@pytest.mark.parametrize("previous_action", [False, True])
def test_flatten_observations_matches_gymnasium(env_id, previous_action):
    env = make_popgym_env(env_id, previous_action=previous_action)
    env.observation_space.seed(0)
    samples = [env.observation_space.sample() for _ in range(20)]
    if isinstance(env.observation_space, spaces.Dict):
        batch = {k: np.stack([s[k] for s in samples]) for k in env.observation_space.spaces}
    else:
        batch = np.stack([np.asarray(s) for s in samples])
    expected = np.stack([spaces.flatten(env.observation_space, s) for s in samples]).astype(np.float32)
    np.testing.assert_array_equal(bench.flatten_observations(env.observation_space, batch), expected)
    # ... and it is what the one-hot env (RecurrentPPO's) observes.
    one_hot = make_popgym_env(env_id, previous_action=previous_action, one_hot=True)
    assert one_hot.observation_space.shape == expected.shape[1:]


# ---------------------------------------------------------------------------------------------------- evaluation
def test_evaluation_uses_seeds_0_to_99():
    """Env i of the evaluation is seeded with i: the expert's return per env equals a direct episode on seed i."""
    env_id = "popgym-HigherLowerEasy-v0"  # returns differ from seed to seed
    venv = bench.make_eval_env(env_id)
    assert venv.num_envs == 100
    outcome = bench.evaluate(get_model("expert").build(venv, 0, {"env_id": env_id}).model, venv, deterministic=True)
    direct = [play_episode(env_id, seed)[0] for seed in range(100)]
    np.testing.assert_allclose(outcome["returns"], direct, atol=1e-5)
    assert len(set(np.round(direct, 4))) > 5
    assert outcome["lengths"] == [51] * 100


def test_evaluation_greedy_is_deterministic_and_sampling_is_seeded():
    env_id = "popgym-RepeatPreviousEasy-v0"
    model = get_model("elmur").build(vec_env(env_id), 0).model
    runs = [bench.evaluate(model, bench.make_eval_env(env_id, 100), deterministic=True, seed=s) for s in (0, 1)]
    assert runs[0]["returns"] == runs[1]["returns"]
    sampled = [bench.evaluate(model, bench.make_eval_env(env_id, 100), deterministic=False, seed=s) for s in (0, 0, 1)]
    assert sampled[0]["returns"] == sampled[1]["returns"] != sampled[2]["returns"]


def test_category_sums_and_modes():
    values = {"popgym-CountRecallEasy-v0": 0.5, "popgym-BattleshipEasy-v0": -0.25, "popgym-PositionOnlyCartPoleEasy-v0": 1.0}
    assert bench.category_sums(values) == {"all": 1.25, "puzzle": 0.25, "reactive": 1.0}
    result = {"family": "Battleship", "eval": {"sampled": {"mean": 0.1}, "greedy": {"mean": 0.3}}}
    assert bench.mode_mean(result, "paper") == 0.3
    assert bench.mode_mean({**result, "family": "CountRecall"}, "paper") == 0.1


def test_expert_ratio_is_over_the_tasks_both_have():
    """An agent with more tasks than the expert (the expert's runs still to come) is not divided by a smaller sum."""
    agent = {"popgym-CountRecallEasy-v0": 0.5, "popgym-BattleshipEasy-v0": -0.25, "popgym-RepeatFirstEasy-v0": 1.0}
    expert = {"popgym-CountRecallEasy-v0": 1.0, "popgym-RepeatFirstEasy-v0": 1.0, "popgym-PositionOnlyCartPoleEasy-v0": 1.0}
    assert bench.expert_ratio(agent, expert) == pytest.approx(1.5 / 2.0)
    assert math.isnan(bench.expert_ratio(agent, {}))


# ---------------------------------------------------------------------------------------------------- offline runs
def _run(tmp_path: Path, *extra: str) -> list[dict]:
    argv = ["--tasks", *TASKS, "--data-dir", str(tmp_path / "data"), "--output", str(tmp_path / "out" / "offline"), *TINY]
    return bench.main([*argv, *extra])


def test_offline_run_resume_and_corrupt_file(tmp_path, capsys, monkeypatch):
    results = _run(tmp_path)
    runs = sorted((tmp_path / "out" / "offline_runs").glob("*.json"))
    assert len(runs) == 2 * 5 == len(results)  # 2 tasks x (elmur, bc-lstm, bc-mlp, random, expert)
    for suffix in (".md", ".csv", ".png"):
        assert (tmp_path / "out" / f"offline{suffix}").stat().st_size > 0
    first = json.loads(runs[0].read_text())
    assert first["command"].startswith("python benchmarks/popgym_benchmark.py --tasks")
    assert len(first["eval"]["sampled"]["returns"]) == 4
    # Sums in the report and CSV are the sums of the per-task numbers.
    with (tmp_path / "out" / "offline.csv").open() as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == 2 * len(results)
    greedy = {r["task"]: float(r["mean_return"]) for r in rows if r["model"] == "elmur" and r["mode"] == "greedy"}
    total = sum(greedy.values())
    report = (tmp_path / "out" / "offline.md").read_text()
    assert f"| ELMUR | greedy | {total:.2f} | {total:.2f} | - |" in report
    expert = {r["task"]: float(r["mean_return"]) for r in rows if r["model"] == "expert" and r["mode"] == "greedy"}
    assert expert == {t: 1.0 for t in TASKS}
    assert "| ELMUR | 10.4 | 1.2 | 9.2 |" in report  # the literature values

    # A rerun skips every finished run ...
    mtimes = {p: p.stat().st_mtime_ns for p in runs}
    capsys.readouterr()
    _run(tmp_path)
    assert "10 done already, 0 to do" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in runs} == mtimes
    # ... redoes a corrupt one (and only that one) ...
    corrupt = tmp_path / "out" / "offline_runs" / "CountRecallEasy__elmur__seed0.json"
    corrupt.write_text('{"eval": {"sampled": ')
    _run(tmp_path)
    captured = capsys.readouterr()
    assert "corrupt" in captured.err and "9 done already, 1 to do" in captured.out
    assert json.loads(corrupt.read_text())["eval"]["greedy"]["returns"]
    # ... and one made with other settings.
    _run(tmp_path, "elmur.learning_rate=0.002")
    captured = capsys.readouterr()
    assert "other settings" in captured.err and "8 done already, 2 to do" in captured.out
    # ... and the runs of a model whose settings in the registry changed, with the same command line.
    monkeypatch.setitem(registry.ELMUR_KWARGS, "n_slots", 3)
    _run(tmp_path, "elmur.learning_rate=0.002")
    captured = capsys.readouterr()
    assert "other settings" in captured.err and "8 done already, 2 to do" in captured.out
    assert json.loads(corrupt.read_text())["settings"]["defaults"] == get_model("elmur").defaults_digest()
    # A run of one task still reports both: the report covers every saved run of the track.
    argv = ["--data-dir", str(tmp_path / "data"), "--output", str(tmp_path / "out" / "offline"), *TINY]
    bench.main(["--tasks", TASKS[0], *argv, "elmur.learning_rate=0.002", "--report-only"])  # TINY ends with --set
    report = (tmp_path / "out" / "offline.md").read_text()
    assert all(f"| {bench.short_name(task)} |" in report for task in TASKS) and "(2 of 48:" in report


def test_results_saved_before_the_registry_digest_stay_valid_until_the_registry_changes(tmp_path, monkeypatch):
    settings = {"eval_episodes": 4, "overrides": {}}
    legacy = bench.RunSpec("offline", TASKS[0], "elmur", 0, settings)  # how a result was fingerprinted before
    result = {"eval": {"sampled": {"mean": 0.5}, "greedy": {"mean": 0.5}}, "fingerprint": legacy.fingerprint()}
    path = tmp_path / "run.json"
    path.write_text(json.dumps({**result, "settings": settings}))

    def spec() -> bench.RunSpec:
        digest = get_model("elmur").defaults_digest()
        return bench.RunSpec("offline", TASKS[0], "elmur", 0, {**settings, "defaults": digest}, str(path))

    monkeypatch.setitem(registry.UNRECORDED_DIGESTS, "elmur", get_model("elmur").defaults_digest())
    assert bench.load_result(spec()) is not None, "made with the registry's settings of the time"
    monkeypatch.setitem(registry.BC_SETTINGS, "updates", 1999)
    assert bench.load_result(spec()) is None, "the registry's BC settings changed since"
    monkeypatch.setitem(registry.BC_SETTINGS, "updates", 2000)
    assert bench.load_result(spec()) is not None
    path.write_text(json.dumps({**result, "settings": {**settings, "defaults": "another"}}))
    assert bench.load_result(spec()) is None, "a result with a digest must match it"


def test_custom_registry_entry_runs_in_the_harness(tmp_path):
    """A model registered by a user runs in the harness unchanged (here: a trainer that records what it got)."""
    calls = []

    def train(agent: Agent, inputs: TrainingInputs) -> None:
        calls.append((inputs.dataset.n_episodes, agent.settings["updates"]))

    def build(env, seed, overrides):
        overrides.pop("env_id")
        return Agent(registry.RandomPolicy(env.action_space, seed), {"updates": overrides.pop("updates", 1)}, train)

    register_model("test-custom", "Custom", "offline", build)
    try:
        argv = ["--tasks", TASKS[0], "--models", "test-custom", "--data-dir", str(tmp_path / "data")]
        results = bench.main([*argv, "--output", str(tmp_path / "custom"), *TINY[:-2]])
    finally:
        registry._REGISTRY.pop("test-custom")
    assert calls == [(6, 2)]
    assert results[0]["label"] == "Custom"


def test_worker_processes(tmp_path):
    argv = ["--tasks", *TASKS, "--models", "random", "expert", "--eval-episodes", "3", "--workers", "2"]
    results = bench.main([*argv, "--output", str(tmp_path / "w"), "--data-dir", str(tmp_path / "data")])
    assert len(results) == 4 and len(list((tmp_path / "w_runs").glob("*.json"))) == 4


# ---------------------------------------------------------------------------------------------------- online runs
def test_online_run(tmp_path):
    argv = ["--track", "online", "--tasks", TASKS[0], "--timesteps", "128", "--n-envs", "2", "--eval-freq", "64"]
    argv += ["--eval-episodes", "3", "--workers", "0", "--output", str(tmp_path / "online")]
    argv += ["--set", '*.model_kwargs={"n_steps": 32, "batch_size": 32, "n_epochs": 1}']
    results = bench.main(argv)
    by_model = {r["model"]: r for r in results}
    assert set(by_model) == {"elmur-ppo", "recurrent-ppo", "ppo-mlp", "random", "expert"}
    for name in ("elmur-ppo", "recurrent-ppo", "ppo-mlp"):
        run = by_model[name]
        assert run["timesteps"] == 128 and run["steps_per_s"] > 0
        assert [step for step, _ in run["curve"]] == [64, 128]
        assert run["trainer_settings"]["n_steps"] == 32
    assert category(TASKS[0]) == "puzzle"
    report = (tmp_path / "online.md").read_text()
    assert "online track" in report and "steps/s" in report
    assert (tmp_path / "online.csv").exists() and (tmp_path / "online.png").exists()


# ---------------------------------------------------------------------------------------------------- ray
def test_ray_local_cluster(tmp_path):
    ray = pytest.importorskip("ray", reason="Ray is optional (pip install 'ray[default]'); --ray-address needs it")
    pool = bench.RayPool("local", num_cpus=2)
    try:
        argv = ["--tasks", *TASKS, "--models", "random", "expert", "--eval-episodes", "3", "--output", str(tmp_path / "r")]
        specs_results = bench.main([*argv, "--data-dir", str(tmp_path / "data"), "--ray-address", "local"])
        assert len(specs_results) == 4
        assert len(list((tmp_path / "r_runs").glob("*.json"))) == 4
    finally:
        del pool
        ray.shutdown()


def test_elmur_cloning_leaves_the_compile_decision_to_elmur_bc(monkeypatch):
    """The registry's ELMUR trains with compile_backbone="auto" (ElmurBC times its first updates and compiles where
    that pays); an override is passed on as it is."""
    import sb3_elmur.bc

    seen = {}

    class Recorder:
        def __init__(self, model, dataset, **kwargs):
            seen.update(kwargs)

        def learn(self, n_updates, progress_bar=True):
            seen["n_updates"] = n_updates

    monkeypatch.setattr(sb3_elmur.bc, "ElmurBC", Recorder)
    for overrides, expected in (({"updates": 7}, "auto"), ({"updates": 7, "compile_backbone": False}, False)):
        agent = get_model("elmur").build(vec_env("popgym-CountRecallEasy-v0"), 0, overrides)
        agent.fit(TrainingInputs(dataset=object()))
        assert seen["n_updates"] == 7 and seen["compile_backbone"] == expected


def test_registry_models_run_on_the_cpu_unless_asked_otherwise():
    device = "cuda" if th.cuda.is_available() else "auto"  # "auto" is the CPU here: the override must still be taken
    for name in ("elmur", "bc-lstm", "bc-mlp", "elmur-ppo", "recurrent-ppo", "ppo-mlp"):
        env = vec_env("popgym-CountRecallEasy-v0", get_model(name).one_hot)
        assert get_model(name).build(env, 0).model.device.type == "cpu"
        agent = get_model(name).build(env, 0, {"model_kwargs": {"device": device}})
        assert agent.model.device.type == ("cuda" if device == "cuda" else "cpu"), name
