"""
Scripted experts of the memory variants, acting on the same observations as the agents (no privileged state).

:class:`TakeItBackExpert` remembers where the cube started, pushes it into the goal region (slowly, stopping inside
it so that the cube stays within the arm's reach), then picks it up and carries it back to where it started.
With ``ignore_start=True`` it carries it to the middle lane instead: a memoryless policy (about 1/3 of the episodes).

:class:`RememberColorExpert` remembers the cue of the first steps and, once the cubes are back, moves the gripper
to the cube of that colour and holds still there (end-effector control, ``control_mode="pd_ee_delta_pos"``).
With ``ignore_cue=True`` it always goes to the cube of colour 0: a memoryless policy, which succeeds only when the
target happens to be colour 0 (1/N of the episodes).
"""

from typing import Any

import numpy as np

#: Layout of the RememberColor memory-variant state: qpos 9, qvel 9, tcp_pose 7, then cube positions 3N,
#: cube - TCP 3N and the cue N (``memory_variants.OBS_VERSION`` 1).
TCP = slice(18, 21)
CUBES_START = 25
#: Per-colour entries after the proprioception: position 3, cube - TCP 3, cue 1.
PER_COLOR = 7


def remember_color_layout(n_colors: int) -> dict[str, slice]:
    """
    Where the parts of the RememberColorN memory-variant state lie.

    :param n_colors: N of RememberColorN.
    :return: Slices ``tcp`` (TCP position), ``positions`` (3N), ``tcp_to_cubes`` (3N, cube - TCP) and ``cue`` (N).
    """
    n = n_colors
    return {
        "tcp": TCP,
        "positions": slice(CUBES_START, CUBES_START + 3 * n),
        "tcp_to_cubes": slice(CUBES_START + 3 * n, CUBES_START + 6 * n),
        "cue": slice(CUBES_START + 6 * n, CUBES_START + 7 * n),
    }


class RememberColorExpert:
    """
    :param n_colors: N of RememberColorN.
    :param ignore_cue: Forget the cue (always reach colour 0): the memoryless baseline.
    :param gain: Proportional gain of the end-effector motion (actions are clipped to [-1, 1]).
    :param hover: Height of the gripper above the cube centre (the success radius is 0.05).
    """

    def __init__(self, n_colors: int, ignore_cue: bool = False, gain: float = 10.0, hover: float = 0.025) -> None:
        self.n_colors, self.ignore_cue, self.gain, self.hover = n_colors, ignore_cue, gain, hover
        self.layout = remember_color_layout(n_colors)
        self.reset()

    def reset(self) -> None:
        """Forget the episode."""
        self.target: int | None = None

    def act(self, obs: np.ndarray) -> np.ndarray:
        """The action ``[dx, dy, dz, gripper]`` for one observation of the memory variant."""
        n, layout = self.n_colors, self.layout
        cue = obs[layout["cue"]]
        if cue.any() and self.target is None:
            self.target = 0 if self.ignore_cue else int(np.argmax(cue))
        positions = obs[layout["positions"]].reshape(n, 3)
        target = 0 if self.target is None else self.target
        if not positions[target].any():  # cubes still hidden: wait
            return np.array([0.0, 0.0, 0.0, 1.0], dtype=np.float32)
        goal = positions[target] + np.array([0.0, 0.0, self.hover])
        move = np.clip(self.gain * (goal - obs[TCP]), -1.0, 1.0)
        if np.linalg.norm(goal - obs[TCP]) < 0.005:
            move[:] = 0.0  # there: hold still (success needs a static robot)
        return np.array([*move, 1.0], dtype=np.float32)


#: Layout of the TakeItBack memory-variant state: qpos 9, qvel 9, tcp_pose 7, goal_pos 3, cube_pose 7, goal_reached 1.
TIB_GOAL, TIB_CUBE, TIB_REACHED = slice(25, 28), slice(28, 31), 35
TIB_OBS_DIM = 36


class TakeItBackExpert:
    """
    :param ignore_start: Forget the start (carry the cube to the middle lane): the memoryless baseline.
    :param follow_line: Forget the start and read it off the current state instead: the point where the line from
        the goal's centre through the cube crosses x = 0, the start lanes' middle (the middle lane when the cube is
        at the centre). Memoryless too; in the suite's dynamics the cube stops in the goal on its start's side, and
        this policy finds the start without remembering it.
    :param gain: Proportional gain of the end-effector motion.
    :param push_speed: Largest action while pushing (a fast push sends the cube out of reach).
    :param stop: Stop pushing when the cube is this close to the goal centre (the goal radius is 0.08).
    """

    MIDDLE_LANE = np.array([0.0, 0.025])

    def __init__(
        self,
        ignore_start: bool = False,
        gain: float = 10.0,
        push_speed: float = 0.15,
        stop: float = 0.06,
        follow_line: bool = False,
    ) -> None:
        self.ignore_start, self.gain, self.push_speed, self.stop = ignore_start or follow_line, gain, push_speed, stop
        self.follow_line = follow_line
        self.reset()

    def _start_on_the_line(self, obs: np.ndarray) -> np.ndarray:
        """Where the line from the goal's centre through the cube crosses x = 0 (memoryless)."""
        goal, cube = obs[TIB_GOAL][:2], obs[TIB_CUBE][:2]
        away = cube - goal
        if np.linalg.norm(away) < 0.02 or away[0] > -1e-3:  # at the centre, or not on the start's side: no line
            return self.MIDDLE_LANE.copy()
        return np.array([0.0, goal[1] + away[1] * (0.0 - goal[0]) / away[0]])

    def reset(self) -> None:
        """Forget the episode."""
        self.start: np.ndarray | None = None
        self.stage, self.returning, self.timer = "above", False, 0

    def _move(self, obs: np.ndarray, target: np.ndarray, grip: float = -1.0, limit: float = 1.0) -> np.ndarray:
        return np.array([*np.clip(self.gain * (target - obs[TCP]), -limit, limit), grip], dtype=np.float32)

    def act(self, obs: np.ndarray) -> np.ndarray:
        """The action ``[dx, dy, dz, gripper]`` for one observation of the memory variant."""
        cube, tcp = obs[TIB_CUBE], obs[TCP]
        if self.start is None:
            self.start = self.MIDDLE_LANE.copy() if self.ignore_start else cube[:2].copy()
        if obs[TIB_REACHED] > 0.5 and not self.returning:
            self.returning, self.stage = True, "lift"
        if self.follow_line and self.returning:
            self.start = self._start_on_the_line(obs)
        return self._carry_back(obs, cube, tcp) if self.returning else self._push(obs, cube, tcp)

    def _push(self, obs: np.ndarray, cube: np.ndarray, tcp: np.ndarray) -> np.ndarray:
        """Push the cube along the line to the goal, from behind it, with closed fingers."""
        low, high = 0.02, 0.08
        to_goal = obs[TIB_GOAL][:2] - cube[:2]
        dist = float(np.linalg.norm(to_goal))
        direction = to_goal / max(dist, 1e-6)
        behind = np.array([*(cube[:2] - 0.05 * direction), low])
        if self.stage == "above":  # above the point behind the cube
            if np.linalg.norm(tcp[:2] - behind[:2]) < 0.01:
                self.stage = "down"
            return self._move(obs, np.array([*behind[:2], high]))
        if self.stage == "down":
            if abs(tcp[2] - low) < 0.01:
                self.stage = "push"
            return self._move(obs, behind)
        offset = tcp[:2] - cube[:2]
        along = offset @ direction
        if np.linalg.norm(offset - along * direction) > 0.03 or along > -0.01:  # off the line: start again
            self.stage = "above"
            return self._move(obs, np.array([*tcp[:2], high]))
        if dist < self.stop:
            return self._move(obs, tcp)
        return self._move(obs, np.array([*(cube[:2] + 0.04 * direction), low]), limit=self.push_speed)

    def _carry_back(self, obs: np.ndarray, cube: np.ndarray, tcp: np.ndarray) -> np.ndarray:
        """Lift, go over the cube, grasp it, carry it to the start and put it down."""
        assert self.start is not None
        if self.stage == "lift":
            if tcp[2] > 0.045:
                self.stage = "over"
            return self._move(obs, np.array([*tcp[:2], 0.05]), 1.0)
        if self.stage == "over":
            if np.linalg.norm(tcp[:2] - cube[:2]) < 0.008:
                self.stage = "descend"
            # At most 1.5 cm a step: a long step from behind the pushed cube can be beyond the controller's IK.
            return self._move(obs, np.array([*cube[:2], 0.05]), 1.0, limit=0.15)
        if self.stage == "descend":
            if abs(tcp[2] - cube[2]) < 0.006:
                self.stage, self.timer = "grasp", 0
            return self._move(obs, cube.copy(), 1.0)
        if self.stage == "grasp":
            self.timer += 1
            if self.timer > 5:
                self.stage = "carry"
            return self._move(obs, tcp, -1.0)
        if self.stage == "carry":
            if np.linalg.norm(tcp[:2] - self.start) < 0.01:
                self.stage = "place"
            return self._move(obs, np.array([*self.start, 0.05]), -1.0)
        if self.stage == "place":
            if tcp[2] < 0.03:
                self.stage = "release"
            return self._move(obs, np.array([*self.start, 0.025]), -1.0)
        return self._move(obs, np.array([*tcp[:2], 0.08]), 1.0)


class ScriptedExperts:
    """
    One scripted expert per env of a VecEnv, as the callable ``experts(observations, episode_starts)`` that
    :func:`~sb3_elmur.data.collect_trajectories` takes (also SB3's stateful ``predict``). The experts are made at the
    first call, by :meth:`make_expert`.
    """

    def __init__(self) -> None:
        self.experts: list[Any] = []

    def make_expert(self) -> Any:
        """A new expert for one env."""
        raise NotImplementedError

    def __call__(self, observations: np.ndarray, episode_starts: np.ndarray) -> np.ndarray:
        if len(self.experts) != len(observations):
            self.experts = [self.make_expert() for _ in observations]
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


class RememberColorExperts(ScriptedExperts):
    """
    :class:`RememberColorExpert` for every env.

    :param n_colors: N of RememberColorN.
    :param ignore_cue: Memoryless experts (see :class:`RememberColorExpert`).
    """

    def __init__(self, n_colors: int, ignore_cue: bool = False) -> None:
        super().__init__()
        self.n_colors, self.ignore_cue = n_colors, ignore_cue

    def make_expert(self) -> RememberColorExpert:
        return RememberColorExpert(self.n_colors, self.ignore_cue)


class TakeItBackExperts(ScriptedExperts):
    """
    :class:`TakeItBackExpert` for every env.

    :param ignore_start: Memoryless experts (see :class:`TakeItBackExpert`).
    :param follow_line: Memoryless experts that read the start off the cube's place in the goal.
    """

    def __init__(self, ignore_start: bool = False, follow_line: bool = False) -> None:
        super().__init__()
        self.ignore_start, self.follow_line = ignore_start, follow_line

    def make_expert(self) -> TakeItBackExpert:
        return TakeItBackExpert(self.ignore_start, follow_line=self.follow_line)


def build_mikasa_expert(env: Any, seed: int, overrides: dict[str, Any]) -> Any:
    """Registry builder: the scripted expert of the env's task (TakeItBack, or RememberColorN with N read from the
    observation size)."""
    from sb3_elmur.registry import Agent

    size = env.observation_space.shape[0]
    n_colors = overrides.pop("n_colors", None)
    if overrides:
        raise ValueError(f"unknown settings for the MIKASA expert: {sorted(overrides)}")
    if n_colors is None and size == TIB_OBS_DIM:
        return Agent(TakeItBackExperts(), {})
    return Agent(RememberColorExperts(int(n_colors or (size - CUBES_START) // PER_COLOR)), {})


def _register() -> None:
    from sb3_elmur.registry import list_models, register_model

    if "mikasa-expert" not in list_models():
        register_model(
            "mikasa-expert", "Expert", "reference", build_mikasa_expert, trained=False,
            description="scripted RememberColor / TakeItBack expert with memory (end-effector control)",
            family="mikasa",
        )  # fmt: skip


_register()
