#!/usr/bin/env bash
# Stages the unmodified reference sources that the golden scripts run into .ref/ (git-ignored).
# Needs local clones (or bare mirrors) of the public repositories; pass their git directories:
#   tests/golden/stage_refs.sh GPT_OSS_GIT WAN21_GIT
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
