#!/usr/bin/env bash
# Runs chapters from a perturbx bundle on a machine with no internet (written by `perturbx book bundle`).
#   BUNDLE/run.sh REPO CHAPTER...     e.g. bundle/run.sh . 03_gnn
# Environment: PROFILE (default full), DEVICE (default cuda), PYTHON (default python3), PERTURBX_BUNDLE_SITE and
# PERTURBX_BUNDLE_MIRROR (where the wheels are installed and the data unpacked; default under /tmp).
set -euo pipefail
bundle=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "${1:?usage: run.sh REPO CHAPTER...}" && pwd)
shift
python=${PYTHON:-python3}
site=${PERTURBX_BUNDLE_SITE:-/tmp/perturbx-bundle/site}
mirror=${PERTURBX_BUNDLE_MIRROR:-/tmp/perturbx-bundle/data}
(cd "$bundle" && sha256sum --quiet --strict -c SHA256SUMS) || { echo "bundle: a file does not match SHA256SUMS" >&2; exit 1; }
"$python" -m pip install --quiet --no-index --no-deps --no-compile --no-cache-dir --disable-pip-version-check \
  --upgrade --target "$site" "$bundle"/wheels/*.whl
export PYTHONPATH="$site:$repo${PYTHONPATH:+:$PYTHONPATH}" PATH="$site/bin:$PATH"
"$python" -m perturbx.cli book unbundle "$bundle" --mirror "$mirror"
# the copy of the checkout may have no .git: provenance records the commit the bundle was written at
export PERTURBX_COMMIT="$("$python" -c 'import json, sys; print(json.load(open(sys.argv[1]))["commit"])' "$bundle/bundle.json")"
export PERTURBX_DATA_MIRROR="$mirror" PERTURBX_CACHE_DIR="${PERTURBX_CACHE_DIR:-/tmp/perturbx-bundle/cache}"
cd "$repo"
exec "$python" -m perturbx.cli book run --profile "${PROFILE:-full}" --device "${DEVICE:-cuda}" --chapters "$@"
