"""
Scripted experts of the memory variants, acting on the same observations as the agents (no privileged state).

:class:`RememberColorExpert` remembers the cue of the first steps and, once the cubes are back, moves the gripper
to the cube of that colour and holds still there (end-effector control, ``control_mode="pd_ee_delta_pos"``).
With ``ignore_cue=True`` it always goes to the cube of colour 0: a memoryless policy, which succeeds only when the
target happens to be colour 0 (1/N of the episodes).
"""

from typing import Any

import numpy as np

#: Layout of the RememberColor memory-variant state: qpos 9, qvel 9, tcp_pose 7, then cube positions 3N and cue N.
TCP = slice(18, 21)
CUBES_START = 25


class RememberColorExpert:
    """
    :param n_colors: N of RememberColorN.
    :param ignore_cue: Forget the cue (always reach colour 0): the memoryless baseline.
    :param gain: Proportional gain of the end-effector motion (actions are clipped to [-1, 1]).
    :param hover: Height of the gripper above the cube centre (the success radius is 0.05).
    """

    def __init__(self, n_colors: int, ignore_cue: bool = False, gain: float = 10.0, hover: float = 0.025) -> None:
        self.n_colors, self.ignore_cue, self.gain, self.hover = n_colors, ignore_cue, gain, hover
        self.reset()

    def reset(self) -> None:
        """Forget the episode."""
        self.target: int | None = None

    def act(self, obs: np.ndarray) -> np.ndarray:
        """The action ``[dx, dy, dz, gripper]`` for one observation of the memory variant."""
        n = self.n_colors
        cue = obs[CUBES_START + 3 * n : CUBES_START + 4 * n]
        if cue.any() and self.target is None:
            self.target = 0 if self.ignore_cue else int(np.argmax(cue))
        positions = obs[CUBES_START : CUBES_START + 3 * n].reshape(n, 3)
        target = 0 if self.target is None else self.target
        if not positions[target].any():  # cubes still hidden: wait
            return np.array([0.0, 0.0, 0.0, 1.0], dtype=np.float32)
        goal = positions[target] + np.array([0.0, 0.0, self.hover])
        move = np.clip(self.gain * (goal - obs[TCP]), -1.0, 1.0)
        if np.linalg.norm(goal - obs[TCP]) < 0.005:
            move[:] = 0.0  # there: hold still (success needs a static robot)
        return np.array([*move, 1.0], dtype=np.float32)


class RememberColorExperts:
    """
    One :class:`RememberColorExpert` per env of a VecEnv, as the callable ``experts(observations, episode_starts)``
    that :func:`~sb3_elmur.data.collect_trajectories` takes (also SB3's stateful ``predict``).

    :param n_colors: N of RememberColorN.
    :param ignore_cue: Memoryless experts (see :class:`RememberColorExpert`).
    """

    def __init__(self, n_colors: int, ignore_cue: bool = False) -> None:
        self.n_colors, self.ignore_cue = n_colors, ignore_cue
        self.experts: list[RememberColorExpert] = []

    def __call__(self, observations: np.ndarray, episode_starts: np.ndarray) -> np.ndarray:
        if len(self.experts) != len(observations):
            self.experts = [RememberColorExpert(self.n_colors, self.ignore_cue) for _ in observations]
        for expert, start in zip(self.experts, episode_starts, strict=True):
            if start:
                expert.reset()
        return np.stack([expert.act(obs) for expert, obs in zip(self.experts, observations, strict=True)])

    def predict(
        self,
        observation: np.ndarray,
        state: object = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, None]:
        """SB3's ``predict`` (the experts are deterministic and keep their own memory)."""
        starts = np.ones(len(observation), dtype=bool) if episode_start is None else np.asarray(episode_start, dtype=bool)
        return self(observation, starts), None


def build_mikasa_expert(env: Any, seed: int, overrides: dict[str, Any]) -> Any:
    """Registry builder: the scripted RememberColor expert for the env's N (read from its observation size)."""
    from sb3_elmur.registry import Agent

    n_colors = overrides.pop("n_colors", None) or (env.observation_space.shape[0] - CUBES_START) // 4
    if overrides:
        raise ValueError(f"unknown settings for the MIKASA expert: {sorted(overrides)}")
    return Agent(RememberColorExperts(int(n_colors)), {})


def _register() -> None:
    from sb3_elmur.registry import list_models, register_model

    if "mikasa-expert" not in list_models():
        register_model(
            "mikasa-expert", "Expert", "reference", build_mikasa_expert, trained=False,
            description="scripted RememberColor expert that remembers the cue (end-effector control)",
            family="mikasa",
        )  # fmt: skip


_register()
