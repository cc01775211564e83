#!/usr/bin/env bash
# Speed against a real NetworkManager: one sandbox, one run, same end state, ratios printed.
#
#   apply   nmiface apply (bridge br0 192.0.2.10/24 + port eth0, both ACTIVATED), atomic
#           (checkpoint) and with --no-checkpoint, to show what the checkpoint costs
#   nmcli   the nmcli script: 2x con add, 2x con up
#   bare    examples/bare_apply.rs: one bare zbus client doing the minimum
#   nmstatectl  when it is on PATH (`cargo install nmstatectl`; CI does not build it): the same
#           bridge and port from an nmstate YAML, applied and removed (state: absent); the
#           head-to-head of nmiface, nmstatectl and nmcli prints medians and ratios
#   undefine of the bridge and its port; nmiface bridge of a static NIC;
#   list --all and dumpxml with 500 profiles defined.
#
# Needs root and integration/install-deps.sh (NetworkManager, hyperfine). RUNS=N to change
# the number of runs (default 20).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --bin nmiface --example bare_apply
B=$PWD/target/release/nmiface
BARE=$PWD/target/release/examples/bare_apply
RUNS=${RUNS:-20}
NAME=b$((RANDOM % 10000))
set -a
eval "$(NMIFACE_NM_LOG=WARN integration/nm-sandbox.sh up "$NAME")"
set +a
TMP=$(mktemp -d)
trap 'integration/nm-sandbox.sh down "$NAME"; rm -rf "$TMP"' EXIT

cat >"$TMP/br0.xml" <<'XML'
<interface type='bridge' name='br0'>
  <protocol family='ipv4'><ip address='192.0.2.10' prefix='24'/></protocol>
  <bridge stp='off'><interface type='ethernet' name='eth0'/></bridge>
</interface>
XML
# Back to a clean host between runs; the pause lets NetworkManager remove the old bridge.
CLEAN="$B undefine br0 >/dev/null 2>&1; nmcli con del br0 br0-port-eth0 >/dev/null 2>&1; sleep 0.3; true"
NMCLI="nmcli con add type bridge ifname br0 con-name br0 bridge.stp no ipv4.method manual ipv4.addresses 192.0.2.10/24 ipv6.method disabled >/dev/null \
 && nmcli con add type ethernet ifname eth0 con-name br0-port-eth0 master br0 slave-type bridge >/dev/null \
 && nmcli con up br0 >/dev/null && nmcli con up br0-port-eth0 >/dev/null"

# nmstate: the same bridge and port. nmstatectl checks its result through netlink in its own
# network namespace, so it runs in the sandbox's (from the host's it sees no br0, retries for
# ~10 s and rolls back); the bus address comes from the environment the sandbox printed.
NMSTATE=()
NMSTATE_DEL=()
if command -v nmstatectl >/dev/null; then
    cat >"$TMP/br0.yml" <<'YAML'
interfaces:
- name: br0
  type: linux-bridge
  state: up
  ipv4:
    enabled: true
    dhcp: false
    address:
    - ip: 192.0.2.10
      prefix-length: 24
  ipv6:
    enabled: false
  bridge:
    options:
      stp:
        enabled: false
    port:
    - name: eth0
YAML
    printf 'interfaces:\n- name: br0\n  type: linux-bridge\n  state: absent\n' >"$TMP/br0-absent.yml"
    NS_EXEC="ip netns exec $NMIFACE_NETNS"
    NMSTATECTL="$NS_EXEC $(command -v nmstatectl)"
    # nmstate names its profiles after the interfaces (br0, eth0): clean those up too.
    CLEAN="$CLEAN; nmcli con del eth0 >/dev/null 2>&1; sleep 0.1; true"
    NMSTATE=(-n nmstatectl "$NMSTATECTL apply $TMP/br0.yml" -n netns-exec "$NS_EXEC true")
    NMSTATE_DEL=(--prepare "$CLEAN; $NMSTATECTL apply $TMP/br0.yml >/dev/null"
                 -n nmstatectl-del "$NMSTATECTL apply $TMP/br0-absent.yml")
else
    echo "*** benches/nm.sh: nmstatectl not on PATH: no nmstate figures (cargo install nmstatectl) ***" >&2
fi

# netns-exec (ip netns exec ... true) is what entering the namespace costs nmstatectl.
if [[ ${#NMSTATE[@]} -gt 0 ]]; then
    hyperfine --runs "$RUNS" --warmup 2 --export-json "$TMP/apply.json" \
        --prepare "$CLEAN" --prepare "$CLEAN" --prepare "$CLEAN" --prepare "$CLEAN" --prepare "$CLEAN" --prepare true \
        -n apply "$B apply $TMP/br0.xml" -n apply-nocp "$B apply --no-checkpoint $TMP/br0.xml" \
        -n nmcli "$NMCLI" -n bare "$BARE" "${NMSTATE[@]}" >/dev/null 2>&1
else
    hyperfine --runs "$RUNS" --warmup 2 --export-json "$TMP/apply.json" --prepare "$CLEAN" \
        -n apply "$B apply $TMP/br0.xml" -n apply-nocp "$B apply --no-checkpoint $TMP/br0.xml" \
        -n nmcli "$NMCLI" -n bare "$BARE" >/dev/null 2>&1
fi
# Removal of the bridge and its port, each tool undoing its own apply.
hyperfine --runs "$RUNS" --warmup 2 --export-json "$TMP/undefine.json" \
    --prepare "$CLEAN; $B apply $TMP/br0.xml >/dev/null" -n undefine "$B undefine br0" \
    --prepare "$CLEAN; $NMCLI" -n nmcli-del "nmcli con del br0 br0-port-eth0 >/dev/null" \
    "${NMSTATE_DEL[@]}" >/dev/null 2>&1
sh -c "$CLEAN"

# nmiface bridge: a NIC with a static address becomes a port of a new bridge, to ACTIVATED.
echo "<interface type='ethernet' name='eth1'><protocol family='ipv4'><ip address='198.51.100.20' prefix='24'/></protocol></interface>" >"$TMP/eth1.xml"
hyperfine --runs "$RUNS" --warmup 2 --export-json "$TMP/bridge.json" \
    --prepare "$B unbridge --no-start br9 >/dev/null 2>&1; $B undefine br9 >/dev/null 2>&1; $B apply $TMP/eth1.xml >/dev/null; sleep 0.3" \
    -n bridge "$B bridge eth1 br9" -n bridge-nostp "$B bridge --no-stp eth1 br9" >/dev/null 2>&1
$B unbridge br9 >/dev/null 2>&1 || true

# 500 profiles: ethernet interfaces d0..d499 with a static address each.
python3 - "$TMP/500.xml" <<'PY'
import sys
with open(sys.argv[1], "w") as f:
    f.write("<interfaces>\n")
    for i in range(500):
        f.write(f"<interface type='ethernet' name='d{i}'><start mode='none'/><protocol family='ipv4'>"
                f"<ip address='10.{i // 250}.{i % 250}.1' prefix='24'/></protocol></interface>\n")
    f.write("</interfaces>\n")
PY
define_ms=$( { /usr/bin/time -f %e "$B" define "$TMP/500.xml" >/dev/null; } 2>&1 | tail -1)
# The capability check that define/start/apply run first: Version read, probes, kernel files.
hyperfine --runs "$RUNS" --warmup 2 --export-json "$TMP/check.json" -i -n check "$B check $TMP/br0.xml" >/dev/null 2>&1
hyperfine --runs "$RUNS" --warmup 2 --export-json "$TMP/list.json" \
    -n list "$B list --all" -n dumpxml "$B dumpxml d250" -n both "$B list --all >/dev/null && $B dumpxml d250" >/dev/null 2>&1

python3 - "$TMP" "$define_ms" <<'PY'
import json, sys
d = sys.argv[1]
def load(name):
    return {r["command"]: r for r in json.load(open(f"{d}/{name}.json"))["results"]}
a, u, l, b, c = load("apply"), load("undefine"), load("list"), load("bridge"), load("check")
ms = lambda r: r["mean"] * 1000
sd = lambda r: r["stddev"] * 1000
print("same sandbox NetworkManager, same run; mean +- sd over the runs")
for k in ("apply", "apply-nocp", "nmcli", "bare"):
    print(f"  {k:<8} {ms(a[k]):7.1f} ms +- {sd(a[k]):5.1f}")
print(f"  nmiface apply is {ms(a['nmcli']) / ms(a['apply']):.1f}x faster than the nmcli script (target >= 6x)")
print(f"  nmiface apply is {ms(a['apply']) / ms(a['bare']):.2f}x the bare client (target <= 1.25x)")
print(f"  the checkpoint adds {ms(a['apply']) - ms(a['apply-nocp']):.1f} ms to an apply ({ms(a['apply-nocp']):.1f} ms without; target <= 10 ms)")
print(f"  undefine of bridge + port: {ms(u['undefine']):.1f} ms (target <= 30 ms)")
print(f"  nmiface check as a whole process: {ms(c['check']):.1f} ms (its share of an apply: a few ms at most)")
print(f"  bridge --no-stp eth1 br9 (static address) to ACTIVATED: {ms(b['bridge-nostp']):.1f} ms +- {sd(b['bridge-nostp']):.1f} (target < 150 ms)")
print(f"  bridge eth1 br9 with STP (the default): {ms(b['bridge']):.1f} ms: the kernel's minimum forward delay (2 s) holds the bridge's carrier")
print(f"  with 500 profiles: list --all {ms(l['list']):.1f} ms, dumpxml {ms(l['dumpxml']):.1f} ms, "
      f"both {ms(l['both']):.1f} ms (target < 150 ms); define of the 500: {float(sys.argv[2]) * 1000:.0f} ms")

# Head to head: the same bridge + port applied and removed by each tool; medians, since a
# rollback retry or a slow activation in one run should not move the figure.
med = lambda r: r["median"] * 1000
rows = [("nmiface", a["apply"], u["undefine"]), ("nmcli", a["nmcli"], u["nmcli-del"])]
if "nmstatectl" in a:
    rows.insert(1, ("nmstatectl", a["nmstatectl"], u["nmstatectl-del"]))
print("head to head, bridge br0 192.0.2.10/24 + port eth0; medians; ratio = tool / nmiface")
print(f"  {'tool':<11} {'apply':>9} {'ratio':>6} {'remove':>9} {'ratio':>6}")
for name, ap, rm in rows:
    print(f"  {name:<11} {med(ap):6.1f} ms {med(ap) / med(a['apply']):5.1f}x {med(rm):6.1f} ms {med(rm) / med(u['undefine']):5.1f}x")
if "nmstatectl" in a:
    print(f"  (nmstatectl runs through ip netns exec, which alone takes {med(a['netns-exec']):.1f} ms)")
PY
