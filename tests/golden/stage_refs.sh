#!/usr/bin/env bash
# Stages the unmodified reference sources that the golden scripts run into .ref/ (git-ignored).
# Needs local clones (or bare mirrors) of the public repositories; pass their git directories:
#   tests/golden/stage_refs.sh GPT_OSS_GIT WAN21_GIT [DIFFUSERS_GIT ACESTEP_GIT]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
gptoss=$1 wan=$2
stage() {  # git-dir path-in-repo destination
  mkdir -p "$(dirname "$3")"
  git --git-dir="$1" show "HEAD:$2" >"$3"
}
for f in gpt_oss/__init__.py gpt_oss/torch/__init__.py gpt_oss/torch/model.py \
         gpt_oss/torch/weights.py gpt_oss/metal/scripts/create-local-model.py; do
  stage "$gptoss" "$f" "$root/.ref/$f"
done
stage "$wan" wan/modules/model.py "$root/.ref/wan/model.py"
echo "staged into $root/.ref"
# Diffusion references: diffusers (as a package; pass its git dir as $3) and ACE-Step ($4).
if [ $# -ge 4 ]; then
  mkdir -p "$root/.ref/acestep/schedulers" && tmp=$(mktemp -d)
  git --git-dir="$3" archive HEAD src/diffusers | tar -x -C "$tmp"
  tar -C "$tmp/src" -cJf "$root/.ref/diffusers.tar.xz" diffusers && rm -rf "$tmp"
  for f in scheduling_flow_match_euler_discrete.py scheduling_flow_match_heun_discrete.py scheduling_flow_match_pingpong.py; do
    stage "$4" "acestep/schedulers/$f" "$root/.ref/acestep/schedulers/$f"
  done
  stage "$4" acestep/apg_guidance.py "$root/.ref/acestep/apg_guidance.py"
  touch "$root/.ref/acestep/__init__.py" "$root/.ref/acestep/schedulers/__init__.py"
fi
