"""RL Zoo integration: train/enjoy through the zoo's CLI, the ELMUR Optuna sampler, studies shared by two workers."""

import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

pytest.importorskip("rl_zoo3")
optuna = pytest.importorskip("optuna")

from sb3_elmur import ElmurPPO  # noqa: E402
from sb3_elmur.zoo import convert_elmur_ppo_params, main, sample_elmur_ppo_params  # noqa: E402

WORKER = Path(__file__).parent / "zoo_worker.py"
TINY = ["--algo", "elmur_ppo", "--env", "CartPoleNoVel-v1", "-n", "64", "--eval-freq", "-1", "--seed", "0"]
OPTIMIZE = ["-optimize", "--n-trials", "2", "--n-evaluations", "1", "--sampler", "random", "--pruner", "none"]


def zoo_worker(args: list[str], cwd: Path) -> subprocess.Popen:
    """A zoo worker process (tiny PPO search space, see zoo_worker.py), one torch thread."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parent)}
    return subprocess.Popen([sys.executable, str(WORKER), *args], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)  # fmt: skip


def finish(workers: list[subprocess.Popen], timeout: float = 600) -> None:
    for worker in workers:
        out, _ = worker.communicate(timeout=timeout)
        assert worker.returncode == 0, out[-3000:]


def saved_model(logs: Path) -> ElmurPPO:
    (path,) = logs.glob("elmur_ppo/CartPoleNoVel-v1_*/CartPoleNoVel-v1.zip")
    return ElmurPPO.load(path)


def test_train_and_enjoy_through_the_zoo_cli(tmp_path):
    logs = tmp_path / "logs"
    main(["train", *TINY, "-f", str(logs), "-params", "n_envs:2"])
    model = saved_model(logs)
    # The settings of the packaged hyperparameter file, not ElmurPPO's defaults.
    assert (model.policy.elmur_config.d_model, model.policy.elmur_config.n_layers) == (32, 1)
    assert model.n_steps == 32 and model.n_epochs == 20
    main(["enjoy", "--algo", "elmur_ppo", "--env", "CartPoleNoVel-v1", "-f", str(logs), "-n", "40", "--no-render"])
    if importlib.util.find_spec("pygame") is not None:  # classic-control rendering
        videos = tmp_path / "videos"
        main(
            [
                "record_video",
                "--algo",
                "elmur_ppo",
                "--env",
                "CartPoleNoVel-v1",
                "-f",
                str(logs),
                "-n",
                "30",
                "-o",
                str(videos),
            ]
        )
        assert list(videos.glob("*.mp4"))
    with pytest.raises(SystemExit, match="usage"):
        main(["fly"])
    # The zoo's own NoVel ids (velocities zeroed, 4 inputs) do not replace ours (velocities removed) in the process.
    import gymnasium as gym

    assert gym.make("CartPoleNoVel-v1").observation_space.shape == (2,)
    assert model.observation_space.shape == (2,)


def test_sampler_keeps_the_elmur_settings_in_policy_kwargs():
    params = {
        "batch_size_pow": 5, "n_steps_pow": 5, "one_minus_gamma": 0.01, "one_minus_gae_lambda": 0.05,
        "learning_rate": 3e-4, "ent_coef": 1e-3, "clip_range": 0.2, "n_epochs": 5, "max_grad_norm": 0.5,
        "net_arch": "tiny", "activation_fn": "relu", "elmur_d_model": 64, "elmur_n_layers": 2,
        "elmur_segment_len": 16, "elmur_n_slots": 8, "elmur_lru_lambda": 0.3,
    }  # fmt: skip
    sampled = sample_elmur_ppo_params(optuna.trial.FixedTrial(params), 1, 2, {})
    elmur = {"d_model": 64, "n_layers": 2, "segment_len": 16, "n_slots": 8, "lru_lambda": 0.3, "n_heads": 4}
    assert sampled["policy_kwargs"]["elmur_kwargs"] == elmur
    assert sampled["policy_kwargs"]["net_arch"] == {"pi": [64], "vf": [64]}
    assert convert_elmur_ppo_params(params) == sampled  # a stored trial gives back the same arguments
    model = ElmurPPO("MlpElmurPolicy", "CartPole-v1", **{k: v for k, v in sampled.items() if k != "policy_kwargs"},
                     policy_kwargs=sampled["policy_kwargs"])  # fmt: skip
    assert model.policy.elmur_config.segment_len == 16 and model.n_steps == 32


def test_two_workers_share_a_journal_file_study(tmp_path):
    storage = str(tmp_path / "study.log")
    journal = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(storage))
    optuna.create_study(storage=journal, study_name="elmur", direction="maximize")  # once, before the workers
    args = [*TINY, *OPTIMIZE, "--storage", storage, "--study-name", "elmur", "--no-optim-plots"]
    finish([zoo_worker(["train", *args, "-f", str(tmp_path / f"logs{i}")], tmp_path) for i in range(2)])
    trials = optuna.load_study(storage=journal, study_name="elmur").trials
    assert len(trials) == 4 and len({t.number for t in trials}) == 4
    assert all(t.state == optuna.trial.TrialState.COMPLETE and "elmur_d_model" in t.params for t in trials)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_url():
    """A PostgreSQL server on 127.0.0.1 for this module (started here, stopped at the end), with database optuna."""
    bin_dir = next((Path(d) for d in ("/usr/lib/postgresql/15/bin", "/usr/local/bin") if (Path(d) / "initdb").exists()), None)
    if bin_dir is None and shutil.which("initdb"):
        bin_dir = Path(shutil.which("initdb")).parent
    if bin_dir is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found")
    pytest.importorskip("psycopg2")
    data = Path(tempfile.mkdtemp(prefix="sb3_elmur_postgres_"))  # outside pytest's root-only folders
    port = _free_port()
    as_root = os.geteuid() == 0  # the server refuses to run as root: run it as the postgres user
    if as_root:
        shutil.chown(data, "postgres")

    def run(command: str) -> None:
        full = ["su", "postgres", "-s", "/bin/bash", "-c", command] if as_root else ["bash", "-c", command]
        done = subprocess.run(full, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"{command}: {done.stdout}{done.stderr}"

    run(f"{bin_dir}/initdb -D {data}/db -A trust -U postgres")
    run(f"{bin_dir}/pg_ctl -D {data}/db -o '-c listen_addresses=127.0.0.1 -p {port} -k {data}' -l {data}/log -w start")
    try:
        run(f"{bin_dir}/createdb -h 127.0.0.1 -p {port} -U postgres optuna")
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/optuna"
    finally:
        run(f"{bin_dir}/pg_ctl -D {data}/db -m fast -w stop")
        shutil.rmtree(data, ignore_errors=True)


def test_two_workers_share_a_postgresql_study_and_a_trial_trains_again(tmp_path, postgres_url):
    optuna.create_study(storage=postgres_url, study_name="elmur", direction="maximize")  # once, before the workers
    args = [*TINY, *OPTIMIZE, "--storage", postgres_url, "--study-name", "elmur", "--no-optim-plots"]
    finish([zoo_worker(["train", *args, "-f", str(tmp_path / f"logs{i}")], tmp_path) for i in range(2)])
    trials = optuna.load_study(storage=postgres_url, study_name="elmur").trials
    assert len(trials) == 4 and len({t.number for t in trials}) == 4
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    # --trial-id trains with that trial's hyperparameters, ELMUR settings included.
    chosen = trials[2].params
    logs = tmp_path / "retrain"
    main(["train", *TINY, "--storage", postgres_url, "--study-name", "elmur", "--trial-id", "2", "-f", str(logs)])
    config = saved_model(logs).policy.elmur_config
    assert (config.d_model, config.n_layers, config.segment_len, config.n_slots) == tuple(
        chosen[f"elmur_{name}"] for name in ("d_model", "n_layers", "segment_len", "n_slots")
    )
