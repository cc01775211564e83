#!/usr/bin/env bash
# Whole-process time of `nmiface translate` on samples (target: <= 3 ms per run), with hyperfine
# (installed by integration/install-deps.sh). Prints the mean and its ratio to the target.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
command -v hyperfine >/dev/null || { echo "hyperfine missing: run integration/install-deps.sh" >&2; exit 2; }
target_ms=3
for sample in xml-samples/libvirt-bridge-bond-port.xml xml-samples/host-twelve-interfaces.xml; do
    json=$(mktemp)
    # -i: a translation with findings exits 1, which is a result, not a failure.
    hyperfine -N -i --warmup 20 --runs 300 --export-json "$json" \
        "target/release/nmiface translate $sample" >/dev/null 2>&1
    python3 - "$json" "$sample" "$target_ms" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"][0]
mean, sd = r["mean"] * 1000, r["stddev"] * 1000
print(f"nmiface translate {sys.argv[2]:<45} {mean:5.2f} ms +- {sd:4.2f}  ({float(sys.argv[3]) / mean:.1f}x under the {sys.argv[3]} ms target)")
PY
    rm -f "$json"
done
