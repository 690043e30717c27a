#!/usr/bin/env bash
# The main-job command: install what is missing, build kdad (release), write the seeded demo archive
# into work/demo and run its job, then show its status and where the outputs are.
# Safe to run again: the demo data is reused when it was written with the same arguments (then every
# finished stage is skipped), regenerated otherwise.
#   KDAD_DEMO_SEED=7 scripts/demo.sh                 another seed
#   KDAD_DEMO_ARGS="--side 64 --images 140" ...      any other `kdad demo-data` options
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
swift build -c release --product kdad
KDAD="$(swift build -c release --show-bin-path)/kdad"
DEMO=work/demo
ARGS="--seed ${KDAD_DEMO_SEED:-1} ${KDAD_DEMO_ARGS:-}"
STAMP="$DEMO/.demo-data-args"
# The stamp also hashes the generator's source (images and pipeline text) and the command's, so a
# changed generator or demo pipeline rewrites the data.
WANT="demo-data $ARGS $(cat Sources/KdadPipeline/DemoDataset.swift Sources/kdad/DemoData.swift | sha256sum | cut -c1-16)"

if [ -f "$DEMO/demo.yaml" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ]; then
  echo "demo: reusing $DEMO ($ARGS)"
else
  rm -rf "$DEMO"   # data and its job's work dir: results of other data are of no use
  # shellcheck disable=SC2086  # ARGS is a list of options
  "$KDAD" demo-data "$DEMO" --folder $ARGS
  echo "$WANT" > "$STAMP"   # written last: an interrupted generation is redone
fi

# The job: ingest, resize, features, train, score, evaluate, threshold, report (pipeline written by
# demo-data). Stage times are in `kdad status` and $DEMO/work/events.jsonl.
"$KDAD" run "$DEMO/demo.yaml"
"$KDAD" status "$DEMO/demo.yaml"

echo
echo "demo images:   $DEMO/images/night-*/lot-*/  (labels: $DEMO/labels.csv; masks: *_mask.png)"
echo "job manifest:  $DEMO/demo.yaml   pipeline: $DEMO/pipeline.yaml"
echo "run log:       $DEMO/work/events.jsonl"
if [ -d "$DEMO/work/stages" ]; then
  echo "stage outputs:"
  for stage in "$DEMO"/work/stages/*/; do
    files="$(find "$stage" -maxdepth 1 -type f ! -name '*.shard' ! -name '*.png' ! -name 'lot-*.html' ! -name 'stage.json' ! -name 'progress.json' ! -name '.*' -printf '%f\n' | sort | tr '\n' ' ')"
    shards="$(find "$stage" -maxdepth 1 -type f -name '*.shard' | wc -l)"
    pages="$(find "$stage" -maxdepth 1 -type f \( -name '*.png' -o -name 'lot-*.html' \) | wc -l)"
    extra=""; [ "$pages" -gt 0 ] && extra=" + $pages lot pages and overlay images"
    echo "  ${stage%/}  ($shards shards) $files$extra"
  done
fi
echo
# Results (each line only when the file exists); the report last, as an absolute path to open.
if [ -f "$DEMO/work/metrics.json" ]; then
  echo "metrics:       $DEMO/work/metrics.json  (image/pixel AUROC, PRO, F1-max; overall, per lot, per defect type)"
fi
if [ -f "$DEMO/work/report/index.html" ]; then
  echo "report:        $(cd "$DEMO/work/report" && pwd)/index.html"
fi
