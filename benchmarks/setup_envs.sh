#!/usr/bin/env bash
# Create the isolated virtualenvs of the libraries that benchmarks/cartpole.py and
# benchmarks/host.py compare ppox with.
#
#   bash benchmarks/setup_envs.sh          # make the missing ones, bring changed ones up to date
#   bash benchmarks/setup_envs.sh --force  # remake all of them
#   ONLY=sb3contrib bash benchmarks/setup_envs.sh  # just one of them
#
# Each env lives in bench-envs/NAME (gitignored). An env that finished installing carries the
# marker file .bench-ok holding the install steps it was made with: the same steps -> skipped;
# other steps (pins changed here since) -> the steps are pip-installed into the existing env;
# a half-made one (no marker) is remade from scratch.
# The pins are versions that were installed and run end to end together (see benchmarks/README.md).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ENVS="$ROOT/bench-envs"
PYTHON="${PYTHON:-python3}"
FORCE=0
[[ "${1:-}" == "--force" ]] && FORCE=1

# rejax 0.1.3 unpacks 5 values from env.step; gymnax >= 1.0 returns 6 (terminated and truncated),
# so rejax only works with gymnax 0.0.9. The rest is what pip resolved with it, pinned.
REJAX_PINS=(
  rejax==0.1.3
  gymnax==0.0.9
  jax==0.10.2
  jaxlib==0.10.2
  flax==0.12.8
  optax==0.2.8
  chex==0.1.92
  distrax==0.1.9
  tfp-nightly==0.26.0.dev20261027
  numpy==2.4.6
)

# torch first, alone and pinned: on this machine torch==2.13.0 resolves to a local CPU wheel
# (pip's find-links); a bare `torch` requirement pulled in by stable-baselines3 could fetch a
# multi-GB CUDA build instead. stable-baselines3 then finds its torch requirement satisfied.
TORCH_PIN=torch==2.13.0
# gymnasium[mujoco]'s extra, spelled out (HalfCheetah-v5 for benchmarks/host.py); mujoco is the
# version in ppox's .venv, so every library steps the same physics.
MUJOCO_PINS=(
  mujoco==4.0.0
  imageio==2.38.1
  packaging==26.3
)
SB3_PINS=(
  stable-baselines3==2.9.2
  gymnasium==1.4.0
  numpy==2.4.6
  "${MUJOCO_PINS[@]}"
)

# SBX (stable-baselines3 in JAX, PyPI: sbx-rl): it depends on stable-baselines3 and so on torch
# (SB3's rollout buffer), hence the same torch-first step as for sb3. jax/flax/optax/tfp-nightly
# are the versions of bench-envs/rejax (sbx-rl 0.28.0 wants jax<0.12, tfp-nightly>=0.26.0.dev20250831).
SBX_PINS=(
  sbx-rl==0.28.0
  stable-baselines3==2.9.2
  jax==0.10.2
  jaxlib==0.10.2
  flax==0.12.8
  optax==0.2.8
  tfp-nightly==0.26.0.dev20261027
  gymnasium==1.4.0
  numpy==2.4.6
  "${MUJOCO_PINS[@]}"
)

pip_quiet() {
  # pip's warnings about missing local index folders are noise; keep real errors.
  local log rc=0
  log="$(mktemp)"
  "$@" >"$log" 2>&1 || rc=$?
  grep -v "^WARNING: Location 'file:" "$log" >&2 || true
  rm -f "$log"
  return "$rc"
}

make_env() {
  local name="$1" check="$2"
  shift 2
  [[ -n "${ONLY:-}" && "$name" != "$ONLY" ]] && return 0
  local dir="$ENVS/$name"
  local want
  want="$(printf '%s\n' "$@")"  # the install steps, recorded in the marker
  if [[ $FORCE == 0 && -f "$dir/.bench-ok" ]]; then
    if [[ "$(cat "$dir/.bench-ok")" == "$want" ]]; then
      echo "[setup_envs] $name: exists, skipping ($dir)"
      return 0
    fi
    echo "[setup_envs] $name: exists with other pins, updating $dir"
    rm -f "$dir/.bench-ok"
  else
    echo "[setup_envs] $name: creating $dir"
    rm -rf "$dir"
    mkdir -p "$ENVS"
    "$PYTHON" -m venv "$dir"
    pip_quiet "$dir/bin/python" -m pip install --quiet --upgrade pip
  fi
  # each remaining argument is one `pip install` step (a space-separated requirement list)
  local step
  for step in "$@"; do
    echo "[setup_envs] $name: pip install $step"
    # shellcheck disable=SC2086
    pip_quiet "$dir/bin/python" -m pip install --quiet $step
  done
  "$dir/bin/python" -c "$check"
  "$dir/bin/python" -m pip freeze > "$dir/freeze.txt"
  printf '%s\n' "$want" > "$dir/.bench-ok"
  echo "[setup_envs] $name: ready"
}

make_env rejax "import rejax, gymnax, jax; print('rejax ok, jax', jax.__version__)" \
  "${REJAX_PINS[*]}"

make_env sb3 "import stable_baselines3, torch, gymnasium, mujoco; gymnasium.make('HalfCheetah-v5'); print('sb3', stable_baselines3.__version__, 'torch', torch.__version__, 'mujoco', mujoco.__version__)" \
  "$TORCH_PIN" \
  "${SB3_PINS[*]}"

make_env sbx "import sbx, jax, stable_baselines3, gymnasium; gymnasium.make('HalfCheetah-v5'); print('sbx', sbx.__version__, 'jax', jax.__version__, 'sb3', stable_baselines3.__version__)" \
  "$TORCH_PIN" \
  "${SBX_PINS[*]}"

# sb3-contrib (MaskablePPO, RecurrentPPO) for benchmarks/masks.py: stable-baselines3's pins plus the contrib
# package of the same release.
make_env sb3contrib "import sb3_contrib, stable_baselines3, torch, gymnasium; gymnasium.make('Taxi-v4'); print('sb3-contrib', sb3_contrib.__version__, 'torch', torch.__version__)" \
  "$TORCH_PIN" \
  "sb3-contrib==2.9.2 ${SB3_PINS[*]}"

echo "[setup_envs] done: $(ls "$ENVS" | tr "\n" " ")"
