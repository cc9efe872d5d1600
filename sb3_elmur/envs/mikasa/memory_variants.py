"""
Honest memory variants of MIKASA-Robo's RememberColor3/5/9 and TakeItBack that run on the CPU backend.

``RememberColor{3,5,9}-Memory-v0``:

- **Hiding that works on the CPU.** The suite hides the cubes by writing poses in ``evaluate()`` (z = 1000) and
  "restores" them by writing back the pose they have at that moment. On the GPU backend those writes are visual
  only and the cubes never move; on ``physx_cpu`` they are physical, so the cubes stay 1000 m up and then fall for
  the rest of the episode, and the task cannot be solved (``tests/test_mikasa.py`` checks this on the raw env).
  Here the hidden cubes are parked out of reach with zero velocity at every hidden step, and at the first step of
  the search phase every cube is put back where the episode placed it, at rest: the physics of the GPU backend.
  (One difference remains: on the GPU the invisible cubes physically stay on the table during the first 10 steps.)
- **A state without leaks.** The suite's state carries ``oracle_info`` (the target colour) and ``goal_k_pose``
  (the target cube's position under a target mask) at every step. Here the state is the proprioception (joint
  positions and velocities, TCP pose), the positions of the cubes indexed by colour and each cube's offset from the
  TCP (cube - TCP; both zeros while the cubes are hidden), and the cue as a one-hot of the target colour **during
  the cue steps only** (zeros afterwards). Knowing which cube to reach at the search phase needs the memory of the
  first 5 steps. Layout: qpos 9, qvel 9, tcp_pose 7, cube positions 3N, cube - TCP 3N, cue N (25 + 7N dims,
  :data:`OBS_VERSION` 1; version 0 had no cube - TCP). The offsets are what the agent sees anyway (like ManiSkill's
  ``tcp_to_obj_pos`` in its single-object tasks); with absolute positions only, the cloned policies did not learn
  the reach on RememberColor5, whose cubes lie on a 0.3 m arc (``docs/mikasa.md``).

``TakeItBack-Memory-v0``:

- **A state without the start.** The suite's state without ``oracle_info`` (the initial cube position, which the
  agent must remember because it sees it only before the cube moves).
- **A goal that does not tell where the cube came from.** In the suite the cube is pushed into the goal along the
  line from its start and stops just inside the rim, on the start's side: from then on the line from the goal's
  centre through the cube points back to the start, and a policy without memory carries the cube back along it (on
  seeds 0-99 a scripted line-follower succeeds in 0.76 of the episodes and cloned BC-MLP in 0.56, against 0.49 for
  the best memoryless policy of the variant; ``tests/test_mikasa.py``, ``docs/mikasa.md``).
  Here, at the step the cube first reaches the goal, it is placed inside the goal at the same place for every
  start (:data:`SNAP_INSET` from the centre toward the robot), upright and at rest (the arm lets go of nothing: it
  pushes from behind), so only a memory of the first steps says where to take it back.
  ``snap_cube_to_goal=False`` keeps the suite's dynamics. :data:`VARIANT_VERSION` 2 (1: without the snap).

Importing this module registers the ids with ManiSkill.
"""

from typing import Any

import torch
from mani_skill.utils.registration import register_env
from mikasa_robo_suite.rl.memory_envs.remember_color import RememberColor3Env, RememberColor5Env, RememberColor9Env
from mikasa_robo_suite.rl.memory_envs.take_it_back import TakeItBackEnv

#: Height at which hidden cubes wait (out of the cameras' view and the arm's reach).
PARK_HEIGHT = 1000.0
#: Version of the RememberColor memory-variant state (0: without cube - TCP; 1: with it). Data sets and results
#: recorded with another version do not fit the env any more.
OBS_VERSION = 1
MEMORY_IDS = ("RememberColor3-Memory-v0", "RememberColor5-Memory-v0", "RememberColor9-Memory-v0", "TakeItBack-Memory-v0")
#: TakeItBack: where the cube is placed when it reaches the goal, this far inside the goal from its rim nearest the
#: robot (toward the robot from the centre, the same for every start; the goal's radius is 0.08 and its centre is
#: at the edge of the arm's reach at grasping height).
SNAP_INSET = 0.07
#: Version of each memory variant (its state layout and dynamics): data sets and results recorded with another
#: version are not reused. TakeItBack 2: the cube is placed at one place of the goal when it reaches it.
VARIANT_VERSION = {**dict.fromkeys(MEMORY_IDS[:3], OBS_VERSION), "TakeItBack-Memory-v0": 2}


class RememberColorMemoryMixin:
    """CPU-safe cue hiding and a leak-free state for the RememberColor envs (see the module documentation)."""

    TIME_OFFSET: int
    DELTA_TIME: int
    GOAL_THRESH: float
    cubes: dict
    initial_poses: dict
    center_pose: torch.Tensor
    true_color_indices: torch.Tensor
    elapsed_steps: torch.Tensor
    agent: Any
    _obs_mode: str

    def _phase(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``[b]`` masks: cue steps, hidden steps, and the first step of the search phase."""
        t = self.elapsed_steps
        cue = t < self.TIME_OFFSET
        hidden = (t >= self.TIME_OFFSET) & (t < self.TIME_OFFSET + self.DELTA_TIME)
        return cue, hidden, t == self.TIME_OFFSET + self.DELTA_TIME

    def _place_cubes(self) -> None:
        cue, hidden, reveal = self._phase()
        for key, cube in self.cubes.items():
            target = self.true_color_indices == key
            pose = cube.pose.raw_pose.clone()
            park = (cue & ~target) | hidden
            pose[park, :3] = self.initial_poses[key][park]
            pose[park, 2] = PARK_HEIGHT
            show_cue = cue & target
            pose[show_cue, :3] = self.center_pose.expand(int(show_cue.sum()), 3)
            pose[reveal, :3] = self.initial_poses[key][reveal]
            pose[reveal, 3:] = torch.tensor([1.0, 0.0, 0.0, 0.0], device=pose.device)
            changed = park | show_cue | reveal
            if changed.any():
                cube.pose = pose
                # At rest wherever the pose was written: parked cubes do not fall, revealed ones do not fly.
                cube.set_linear_velocity(torch.where(changed[:, None], 0.0, cube.linear_velocity))
                cube.set_angular_velocity(torch.where(changed[:, None], 0.0, cube.angular_velocity))

    def evaluate(self) -> dict:
        self._place_cubes()
        target = torch.stack([self.cubes[key].pose.p for key in sorted(self.cubes)], dim=1)[
            torch.arange(self.true_color_indices.shape[0]), self.true_color_indices.long()
        ]
        to_target = target - self.agent.tcp.pose.p
        placed = torch.linalg.norm(to_target, dim=1) <= self.GOAL_THRESH
        static = self.agent.is_static(0.2)
        # The suite's reward reads these (obj_to_goal_pos, is_obj_placed, is_robot_static); nothing else of it leaks.
        self.obj_to_goal_pos = to_target
        return {"obj_to_goal_pos": to_target, "is_obj_placed": placed, "is_robot_static": static, "success": placed & static}

    def _get_obs_extra(self, info: dict) -> dict:
        obs = {"tcp_pose": self.agent.tcp.pose.raw_pose}
        if self._obs_mode in ("state", "state_dict"):
            cue, hidden, _ = self._phase()
            visible = ~(cue | hidden)
            positions = torch.stack([self.cubes[key].pose.p for key in sorted(self.cubes)], dim=1)  # [b, N, 3]
            shown = visible[:, None, None]
            obs["cube_positions"] = (positions * shown).flatten(1)
            # What the arm must move by to reach each cube (cube - TCP), zeros while hidden like the positions.
            obs["tcp_to_cubes"] = ((positions - self.agent.tcp.pose.p[:, None]) * shown).flatten(1)
            one_hot = torch.nn.functional.one_hot(self.true_color_indices.long(), len(self.cubes)).float()
            obs["cue"] = one_hot * cue[:, None]
        return obs


@register_env("RememberColor3-Memory-v0", max_episode_steps=60)
class RememberColor3MemoryEnv(RememberColorMemoryMixin, RememberColor3Env):
    """RememberColor3 with CPU-safe hiding and a leak-free state."""


@register_env("RememberColor5-Memory-v0", max_episode_steps=60)
class RememberColor5MemoryEnv(RememberColorMemoryMixin, RememberColor5Env):
    """RememberColor5 with CPU-safe hiding and a leak-free state."""


@register_env("RememberColor9-Memory-v0", max_episode_steps=60)
class RememberColor9MemoryEnv(RememberColorMemoryMixin, RememberColor9Env):
    """RememberColor9 with CPU-safe hiding and a leak-free state."""


@register_env("TakeItBack-Memory-v0", max_episode_steps=180)
class TakeItBackMemoryEnv(TakeItBackEnv):
    """
    TakeItBack whose state does not carry the initial cube position (``oracle_info``) and whose cube, once in the
    goal, is at the same place of the goal for every start (see the module documentation).

    :param snap_cube_to_goal: Place the cube at the same place of the goal for every start, at rest, at the step it
        first reaches the goal (False: the suite's dynamics, where the cube's place in the goal points back to its
        start).
    """

    def __init__(self, *args: Any, snap_cube_to_goal: bool = True, **kwargs: Any) -> None:
        self.snap_cube_to_goal = snap_cube_to_goal
        super().__init__(*args, **kwargs)

    def evaluate(self) -> dict:
        before = self.goal_reached_status.bool()
        info = super().evaluate()
        arrived = info["goal_reached_status"].bool() & ~before
        if self.snap_cube_to_goal and arrived.any():
            pose = self.cube.pose.raw_pose.clone()
            pose[arrived, :2] = self.goal_region.pose.p[arrived, :2]
            pose[arrived, 0] -= SNAP_INSET  # the goal's point nearest the robot: the centre can be out of reach
            pose[arrived, 2] = self.CUBE_HALFSIZE
            pose[arrived, 3:] = torch.tensor([1.0, 0.0, 0.0, 0.0], device=pose.device)
            self.cube.pose = pose
            self.cube.set_linear_velocity(torch.where(arrived[:, None], 0.0, self.cube.linear_velocity))
            self.cube.set_angular_velocity(torch.where(arrived[:, None], 0.0, self.cube.angular_velocity))
        return info

    def _get_obs_extra(self, info: dict) -> dict:
        obs = super()._get_obs_extra(info)
        obs.pop("oracle_info", None)
        return obs
