#!/usr/bin/env bash
# MIKASA-Robo on ManiSkill3, on a CPU: software Vulkan, mani-skill, and mikasa-robo-suite without its pins.
# Usage: bash scripts/setup_mikasa.sh        (after scripts/setup.sh; installs into .venv)
#
# - SAPIEN needs Vulkan even for state observations. On a CPU that is Mesa's lavapipe, and Debian 12's own Mesa
#   (22.3) lacks descriptorBindingPartiallyBound: Mesa >= 24.3 comes from bookworm-backports (25.x).
# - mikasa-robo-suite 1.0.0 pins torch 2.2.1, numpy 1.23, gymnasium 0.29 and an old mani_skill: it is installed
#   with --no-deps next to mani-skill 3.x (its env modules need only mani_skill, torch, numpy, sapien,
#   transforms3d, gymnasium and opencv). pip cannot say --no-deps in an extra, hence this script.
# Exits 0 and prints "MIKASA ready" when a ManiSkill env steps and renders; exit 2 when Vulkan cannot be set up.
set -euo pipefail
cd "$(dirname "$0")/.."
. .venv/bin/activate

vulkan_ok() { python - <<'PY' 2>/dev/null
import sapien, sys
try:
    sapien.render.RenderSystem()
except Exception as error:  # no usable Vulkan device
    print(f"no Vulkan: {error}", file=sys.stderr); sys.exit(1)
PY
}

python -m pip install --quiet "mani-skill>=3.0" "transforms3d" "opencv-python-headless"
python -m pip install --quiet --no-deps "mikasa-robo-suite>=1.0"

if ! vulkan_ok; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null && grep -q bookworm /etc/os-release; then
    echo "Installing Mesa's software Vulkan (lavapipe) from bookworm-backports"
    if ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
      printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
        > /etc/apt/sources.list.d/bookworm-backports.sources
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -t bookworm-backports mesa-vulkan-drivers libvulkan1 >/dev/null
  fi
fi
if ! vulkan_ok; then
  echo "Vulkan is not available (need Mesa >= 24.3 lavapipe or a GPU driver): MIKASA-Robo cannot run here" >&2
  exit 2
fi
python - <<'PY'
import gymnasium as gym
import mani_skill.envs  # noqa: F401
import mikasa_robo_suite.rl.memory_envs  # noqa: F401  (registers the MIKASA-Robo ids)

env = gym.make("RememberColor3-v0", obs_mode="state", sim_backend="physx_cpu", render_backend="cpu", num_envs=1)
env.reset(seed=0)
for _ in range(3):
    env.step(env.action_space.sample())
env.close()
env = gym.make("TakeItBack-v0", obs_mode="rgb", sim_backend="physx_cpu", render_backend="cpu", num_envs=1)
obs, _ = env.reset(seed=0)
env.step(env.action_space.sample())
env.close()
print("MIKASA ready")
PY
