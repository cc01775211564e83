#!/usr/bin/env bash
# Scale: cost that grows with the work, not with waiting. One sandboxed NetworkManager, one run.
#
#   64      apply of 64 port-less bridges (static addresses, STP off), applied and verified
#   host12  apply of a 12-interface host file (two bridges with STP and two NIC ports each, whose
#           forward delay holds them 2 s, and ten port-less bridges) against apply of its slowest
#           single interface alone
#   again   apply of the 12-interface file once more, when nothing differs (it only reads)
#   5000    list --all + dumpxml with 5,000 profiles defined
#
# Needs root and integration/install-deps.sh (NetworkManager, hyperfine). RUNS=N (default 5).
# Targets (issue 14): 64 bridges <= 4 s; host12 <= 1.5x its slowest interface; 5,000 < 1 s.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --bin nmiface
B=$PWD/target/release/nmiface
RUNS=${RUNS:-5}
NAME=s$((RANDOM % 10000))
set -a
eval "$(NMIFACE_NM_LOG=WARN integration/nm-sandbox.sh up "$NAME")"
set +a
export NMIFACE_RUNTIME_DIR=$NMIFACE_SANDBOX_DIR/nmiface-run
TMP=$(mktemp -d)
trap 'integration/nm-sandbox.sh down "$NAME"; rm -rf "$TMP"' EXIT

bridge() { # NAME OCTET STP [PORT...]
    local name=$1 octet=$2 stp=$3 p
    shift 3
    printf "<interface type='bridge' name='%s'><protocol family='ipv4'><ip address='10.77.%s.1' prefix='24'/></protocol><bridge stp='%s' delay='2'>" "$name" "$octet" "$stp"
    for p in "$@"; do printf "<interface type='ethernet' name='%s'/>" "$p"; done
    printf "</bridge></interface>\n"
}
{ echo "<interfaces>"; for i in $(seq 0 63); do bridge "pb$i" "$i" off; done; echo "</interfaces>"; } >"$TMP/64.xml"
{
    echo "<interfaces>"
    bridge ba 100 on eth0 eth1
    bridge bb 101 on eth2 eth3
    for i in $(seq 0 9); do bridge "pc$i" $((110 + i)) off; done
    echo "</interfaces>"
} >"$TMP/host12.xml"
{ echo "<interfaces>"; bridge ba 100 on eth0 eth1; echo "</interfaces>"; } >"$TMP/slowest.xml"

# Back to a clean host: undefine every interface of FILE but the NICs.
cat >"$TMP/clean.sh" <<CLEAN
grep -o "name='[a-z0-9]*'" "\$1" | grep -v "name='eth" | cut -d"'" -f2 | while read -r n; do
    "$B" undefine "\$n" >/dev/null 2>&1 || true
done
sleep 0.5
CLEAN
undefine_all() { bash "$TMP/clean.sh" "$1"; }
# Once by hand: each measured apply starts every interface (a clean host before each run).
check_started() { # FILE COUNT
    undefine_all "$1"
    "$B" apply --json "$1" | python3 -c "import json,sys; r=json.load(sys.stdin); n=sum(1 for s in r['started'] if s.get('outcome')=='started'); sys.exit(0 if r['changed'] and n==$2 else 'apply started %d of $2' % n)"
}
check_started "$TMP/64.xml" 64
check_started "$TMP/host12.xml" 12
hyperfine --runs "$RUNS" --export-json "$TMP/64.json" --prepare "bash $TMP/clean.sh $TMP/64.xml" \
    -n 64-bridges "$B apply $TMP/64.xml" >/dev/null 2>&1
undefine_all "$TMP/64.xml"
hyperfine --runs "$RUNS" --export-json "$TMP/host12.json" \
    --prepare "bash $TMP/clean.sh $TMP/host12.xml" \
    -n host12 "$B apply $TMP/host12.xml" -n slowest "$B apply $TMP/slowest.xml" >/dev/null 2>&1
# Applying what is already applied only reads (issue 16: <= 25 ms for 12 interfaces).
"$B" apply "$TMP/host12.xml" >/dev/null
hyperfine --runs $((RUNS * 4)) --warmup 2 --export-json "$TMP/unchanged.json" \
    -n unchanged "$B apply $TMP/host12.xml" >/dev/null 2>&1
undefine_all "$TMP/host12.xml"

python3 - "$TMP/5000.xml" <<'PY'
import sys
with open(sys.argv[1], "w") as f:
    f.write("<interfaces>\n")
    for i in range(5000):
        f.write(f"<interface type='ethernet' name='d{i}'><start mode='none'/><protocol family='ipv4'>"
                f"<ip address='10.{i // 250}.{i % 250}.1' prefix='24'/></protocol></interface>\n")
    f.write("</interfaces>\n")
PY
define_s=$( { /usr/bin/time -f %e "$B" define "$TMP/5000.xml" >/dev/null; } 2>&1 | tail -1)
hyperfine --runs "$RUNS" --warmup 1 --export-json "$TMP/5000.json" \
    -n list "$B list --all" -n dumpxml "$B dumpxml d2500" -n both "$B list --all >/dev/null && $B dumpxml d2500" >/dev/null 2>&1

python3 - "$TMP" "$define_s" <<'PY'
import json, sys
d = sys.argv[1]
def load(name):
    return {r["command"]: r for r in json.load(open(f"{d}/{name}.json"))["results"]}
ms = lambda r: r["median"] * 1000
a, h, l, u = load("64"), load("host12"), load("5000"), load("unchanged")
print("same sandbox NetworkManager, same run; medians")
print(f"  64 port-less bridges applied and verified: {ms(a['64-bridges']):.0f} ms (target <= 4000 ms)")
print(f"  12-interface host file: {ms(h['host12']):.0f} ms; its slowest interface alone: {ms(h['slowest']):.0f} ms; "
      f"ratio {ms(h['host12']) / ms(h['slowest']):.2f} (target <= 1.5)")
print(f"  apply of the same 12-interface file again (nothing to do): {ms(u['unchanged']):.1f} ms (target <= 25 ms)")
print(f"  with 5,000 profiles: list --all {ms(l['list']):.0f} ms, dumpxml {ms(l['dumpxml']):.0f} ms, "
      f"both {ms(l['both']):.0f} ms (target < 1000 ms); define of the 5,000: {float(sys.argv[2]):.1f} s")
PY
