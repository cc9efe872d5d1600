"""History-based experts of the POPGym board games: Battleship, Concentration, MineSweeper, LabyrinthExplore/Escape."""

import itertools
import warnings

import gymnasium as gym
import numpy as np
import pytest

pytest.importorskip("popgym")

from popgym_experts import assert_history_only, assert_reaches_reference, play_episode

from sb3_elmur.envs.popgym import make_popgym_env, parse_task
from sb3_elmur.envs.popgym.experts import make_expert
from sb3_elmur.envs.popgym.experts.boards import neighbour_counts, neighbour_lists
from sb3_elmur.envs.popgym.experts.minesweeper import MineSweeperExpert

FAMILIES = ("Battleship", "Concentration", "MineSweeper", "LabyrinthExplore", "LabyrinthEscape")
TASKS = [f"popgym-{family}{difficulty}-v0" for family in FAMILIES for difficulty in ("Easy", "Medium", "Hard")]
#: MineSweeper is checked on the 300 seeds its reference was measured on (../shared/docs/popgym.md, section 2.2): its
#: returns are mostly the luck of forced guesses (the first click alone is a mine 12.5-17 % of the time), so a mean
#: over 100 seeds has a standard error of about 0.06, and on seeds 0..99 the Easy expert gets 0.766 (0.802 over
#: seeds 0..299, which is within 0.002 of the optimum of any policy, 14/16 - 2/16 * (0.5 + 1/14)).
SEEDS = {"MineSweeper": range(300)}

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the Labyrinth envs warn on construction


@pytest.mark.parametrize("env_id", TASKS)
def test_reaches_reference(env_id: str) -> None:
    assert_reaches_reference(env_id, seeds=SEEDS.get(parse_task(env_id)[0], range(100)))


@pytest.mark.parametrize("env_id", TASKS)
def test_history_only(env_id: str) -> None:
    assert_history_only(env_id)


@pytest.mark.parametrize("env_id", ["popgym-BattleshipHard-v0", "popgym-MineSweeperHard-v0"])
def test_never_repeats(env_id: str) -> None:
    """Battleship never fires twice at a cell, MineSweeper never clicks a revealed cell (both are penalised)."""
    for seed in range(5):
        _, _, steps = play_episode(env_id, seed)
        cells = [tuple(action.tolist()) for action, _ in steps]
        assert len(set(cells)) == len(cells)


@pytest.mark.parametrize("env_id", ["popgym-ConcentrationEasy-v0", "popgym-ConcentrationHard-v0"])
def test_concentration_never_flips_face_up(env_id: str) -> None:
    """Concentration never flips a matched card or the card already turned in this turn (both are penalised; checked
    on the env's hidden state)."""
    env = gym.make(env_id).unwrapped
    for seed in range(5):
        observation, _ = env.reset(seed=seed)
        expert = make_expert(env_id)
        expert.reset(observation)
        done = False
        while not done:
            action = expert.act()
            assert action not in env.deck["face_up_idx"] and action not in env.deck["in_play_idx"]
            observation, reward, terminated, truncated, _ = env.step(action)
            expert.observe(action, float(reward), observation)
            done = terminated or truncated
    env.close()


def test_neighbours() -> None:
    assert neighbour_counts(3, 4).reshape(3, 4).tolist() == [[3, 5, 5, 3], [5, 8, 8, 5], [3, 5, 5, 3]]
    assert neighbour_lists(3, 4)[0] == (1, 4, 5)
    assert neighbour_lists(3, 4)[5] == (0, 1, 2, 4, 6, 8, 9, 10)


def brute_force_probabilities(expert: MineSweeperExpert) -> np.ndarray:
    """Mine probabilities by enumerating every placement of the mines consistent with the revealed counts."""
    cells = expert.height * expert.width
    hidden = np.flatnonzero(~expert.revealed)
    total, consistent = np.zeros(cells), 0
    for mines in itertools.combinations(hidden.tolist(), expert.num_mines):
        board = np.zeros(cells, dtype=bool)
        board[list(mines)] = True
        if all(board[list(expert.neighbours[c])].sum() == expert.counts[c] for c in np.flatnonzero(expert.revealed)):
            total += board
            consistent += 1
    return total / consistent


def test_minesweeper_posterior_is_exact() -> None:
    """The enumerated posterior equals brute force over all mine placements (Easy board), at every step."""
    env_id = "popgym-MineSweeperEasy-v0"
    env = make_popgym_env(env_id)
    checked = 0
    for seed in range(6):
        expert = make_expert(env_id)
        observation, _ = env.reset(seed=seed)
        expert.reset(observation)
        done = False
        while not done:
            probability, certain = expert.posterior()
            np.testing.assert_allclose(probability, brute_force_probabilities(expert), atol=1e-12)
            assert np.array_equal(certain, np.isclose(probability, 1.0))
            checked += 1
            action = expert.act()
            observation, reward, terminated, truncated, _ = env.step(action)
            expert.observe(action, float(reward), observation)
            done = terminated or truncated
    assert checked > 20


@pytest.mark.parametrize("env_id", ["popgym-LabyrinthExploreEasy-v0", "popgym-LabyrinthEscapeHard-v0"])
def test_labyrinth_dead_reckoning(env_id: str) -> None:
    """The expert's position, from its own views and moves only, follows the env's hidden one, whichever border the
    start lies on (the view is not centred at the top and left borders)."""
    sides = set()
    for seed in range(16):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            env = gym.make(env_id).unwrapped
        observation, _ = env.reset(seed=seed)
        expert = make_expert(env_id)
        expert.reset(observation)
        start = np.array(env.maze.start)
        sides.add(
            int(np.argmin([start[0], start[1], env.maze.grid.shape[0] - 1 - start[0], env.maze.grid.shape[1] - 1 - start[1]]))
        )
        done = False
        while not done:
            action = expert.act()
            observation, reward, terminated, truncated, _ = env.step(action)
            expert.observe(action, float(reward), observation)
            relative = np.array(expert.map.position) - expert.map.origin
            assert np.array_equal(start + relative, env.position), f"seed {seed}: lost track"
            done = terminated or truncated
        env.close()
    assert len(sides) == 4  # starts on all four borders were checked
