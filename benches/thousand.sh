#!/usr/bin/env bash
# Scale to 1,000: N port-less bridges (static address, STP off) in one file, `nmiface apply`
# against a bare zbus client doing the minimum (examples/bare_bridges.rs: AddConnection2 and
# ActivateConnection, as many in flight as the bus allows), on the same sandboxed NetworkManager
# in the same run. Both are timed until every bridge is ACTIVATED, by one D-Bus watcher
# (benches/scale-client.py) subscribed before either starts (nmiface returns earlier: a port-less bridge counts as started at IP
# configuration, where NetworkManager still waits ~2 s before it says ACTIVATED). Then, with the
# largest size defined: apply of the same file again (nothing differs: it only reads), and
# `list --all`.
#
#   SIZES="64 256 1000" (default; the largest last)   RUNS=N (default 3, for the re-apply)
#
# Needs root and integration/install-deps.sh (NetworkManager, Debian's python3-dbus and
# python3-gi for the watcher, hyperfine). Targets (issue 21): at 1,000, ACTIVATED within 1.2x of the bare client;
# growth from 64 to 1,000 like the bare client's; re-apply of 1,000 unchanged < 400 ms.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --bin nmiface --example bare_bridges
B=$PWD/target/release/nmiface
BARE=$PWD/target/release/examples/bare_bridges
SIZES=${SIZES:-64 256 1000}
RUNS=${RUNS:-3}
# Each measurement runs on a NetworkManager of its own, started for it: one that has just
# deleted 1,000 profiles is still busy with their devices, and one that has run a while is slower
# than a fresh one, which made whichever tool ran second look 1.5-2x slower.
NAME=
up() {
    [[ -n $NAME ]] && integration/nm-sandbox.sh down "$NAME" >/dev/null 2>&1
    NAME=k$((RANDOM % 10000))
    set -a
    eval "$(NMIFACE_NM_LOG=WARN integration/nm-sandbox.sh up "$NAME")"
    set +a
    export NMIFACE_RUNTIME_DIR=$NMIFACE_SANDBOX_DIR/nmiface-run
}
TMP=$(mktemp -d)
trap '[[ -n $NAME ]] && integration/nm-sandbox.sh down "$NAME" >/dev/null 2>&1; rm -rf "$TMP"' EXIT
client() { /usr/bin/python3 benches/scale-client.py "$@"; }
file() { # N: the bare client's bridges, as XML
    echo "<interfaces>"
    for ((i = 0; i < $1; i++)); do
        printf "<interface type='bridge' name='pb%d'><protocol family='ipv4'><ip address='10.%d.%d.1' prefix='24'/></protocol><bridge stp='off'/></interface>\n" \
            "$i" $((78 + i / 250)) $((i % 250))
    done
    echo "</interfaces>"
}
field() { awk -v k="$1" '$1 == k { print $2 }'; }

printf "%6s %12s %12s %12s %8s %14s %14s\n" bridges "nmiface ret" "nmiface act" "bare act" ratio "nmiface/bridge" "bare/bridge"
for n in $SIZES; do
    file "$n" >"$TMP/$n.xml"
    up
    bare=$(client watch "$n" "$BARE" "$n")
    up
    ours=$(client watch "$n" "$B" apply "$TMP/$n.xml")
    ret=$(field returned <<<"$ours")
    act=$(field activated <<<"$ours")
    bact=$(field activated <<<"$bare")
    awk -v n="$n" -v r="$ret" -v a="$act" -v b="$bact" 'BEGIN {
        printf "%6d %11.2fs %11.2fs %11.2fs %7.2fx %11.1f ms %11.1f ms\n", n, r, a, b, a / b, 1000 * a / n, 1000 * b / n }'
done
# The last sandbox holds the largest size, applied by nmiface.
largest=${SIZES##* }
hyperfine --runs "$RUNS" --warmup 1 --export-json "$TMP/again.json" -n unchanged "$B apply $TMP/$largest.xml" \
    -n list "$B list --all" >/dev/null 2>&1
python3 - "$TMP/again.json" "$largest" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
for k, label in (("unchanged", f"apply of {sys.argv[2]} unchanged"), ("list", f"list --all with {sys.argv[2]}")):
    print(f"{label}: {1000 * r[k]['median']:.0f} ms median")
PY
