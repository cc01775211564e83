#!/usr/bin/env bash
# The session service against the CLI, as an unprivileged user, on one real NetworkManager in
# one run (`nm-sandbox.sh up --users`; polkit says yes to every NetworkManager action for the
# user, who is logged in):
#
#   apply    bridge br0 192.0.2.10/24 + port eth0 to ACTIVATED, system-wide (a NIC port is
#            for system-wide profiles only): `nmiface --system apply` (a process) against the
#            service's Apply with system=true (busctl, a process too); ratio service / CLI
#   cold     D-Bus activation to the first reply (Version property), the service not running,
#            against the same call to a running service
#   memory   the service's resident memory, idle after a list
#   busy     5 clients x 50 ListInterfaces while an Apply waits on an activation (a bridge
#            with STP, held ~2 s by the kernel's forward delay): the slowest call against the
#            Apply's length
#
# Needs root and integration/install-deps.sh. RUNS=N (default 20).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --bin nmiface
B=$PWD/target/release/nmiface
RUNS=${RUNS:-20}
NAME=s$((RANDOM % 10000))
SB=integration/nm-sandbox.sh
set -a
eval "$(NMIFACE_NM_LOG=WARN $SB up "$NAME" --users)"
set +a
trap '$SB down "$NAME"' EXIT
A=$NMIFACE_USER_A
$SB polkit "$NAME" "$NMIFACE_UID_A" 'org.freedesktop.NetworkManager.*' yes
$SB login "$NAME" "$A"
SVC=$NMIFACE_SANDBOX_DIR/services
mkdir -p "$SVC"
printf '[D-BUS Service]\nName=org.nmiface.Interfaces1\nExec=%s session --idle-exit 600\n' "$B" \
    >"$SVC/org.nmiface.Interfaces1.service"
chmod -R a+rX "$SVC"
eval "$($SB session-bus --mount "$NAME" "$A" "$SVC")"   # --mount: the service sees lease files
W=$XDG_RUNTIME_DIR/bench   # the user's own: hyperfine runs as the user and writes here
$SB as "$NAME" "$A" -- mkdir -p "$W"
as_a() { $SB as "$NAME" "$A" -- "$@"; }

XML="<interface type='bridge' name='br0'><protocol family='ipv4'><ip address='192.0.2.10' prefix='24'/></protocol><bridge stp='off'><interface type='ethernet' name='eth0'/></bridge></interface>"
as_a sh -c "cat >$W/br0.xml" <<<"$XML"
CLEAN="$B --system undefine br0 >/dev/null 2>&1; sleep 0.3; true"
# A session tool is connected already: the service leg is one call from a connected client
# (python-dbus), the CLI leg the whole `nmiface apply` process; alternated, same cleanup.
as_a python3 - "$W/apply.json" "$B" "$W/br0.xml" "$RUNS" <<'PY'
import json, subprocess, sys, time
import dbus
out, b, xml_file, runs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
xml = open(xml_file).read()
m = dbus.Interface(dbus.SessionBus().get_object("org.nmiface.Interfaces1", "/org/nmiface/Interfaces1"),
                   "org.nmiface.Interfaces1.Manager")
clean = lambda: (subprocess.run([b, "--system", "undefine", "br0"], capture_output=True), time.sleep(0.3))
res = {"cli": [], "service": []}
for i in range(runs + 2):
    clean()
    t = time.perf_counter()
    subprocess.run([b, "--system", "apply", xml_file], check=True, capture_output=True)
    cli = (time.perf_counter() - t) * 1000
    clean()
    t = time.perf_counter()
    m.Apply(xml, dbus.Dictionary({"system": dbus.Boolean(True)}, signature="sv"), timeout=60)
    svc = (time.perf_counter() - t) * 1000
    if i >= 2:  # warm-up
        res["cli"].append(cli)
        res["service"].append(svc)
clean()
json.dump(res, open(out, "w"))
PY

VERSION="busctl --user get-property org.nmiface.Interfaces1 /org/nmiface/Interfaces1 org.nmiface.Interfaces1.Manager Version"
STOP="pkill -u $A -x nmiface; while pgrep -u $A -x nmiface >/dev/null; do sleep 0.02; done"
as_a hyperfine --runs "$RUNS" --warmup 1 --export-json "$W/cold.json" \
    --prepare "$STOP" -n cold "$VERSION" --prepare true -n warm "$VERSION" >/dev/null 2>&1
as_a busctl --user call org.nmiface.Interfaces1 /org/nmiface/Interfaces1 org.nmiface.Interfaces1.Manager ListInterfaces u 0 >/dev/null
sleep 1
PID=$(pgrep -u "$A" -x nmiface)
rss_kb=$(awk '/^VmRSS/ {print $2}' "/proc/$PID/status")
anon_kb=$(awk '/^RssAnon/ {print $2}' "/proc/$PID/status")

# Busy: an Apply held ~2 s by STP, and 5 clients calling ListInterfaces meanwhile.
STP="<interface type='bridge' name='br1'><protocol family='ipv4'><ip address='198.51.100.1' prefix='24'/></protocol><bridge stp='on' delay='2'><interface type='ethernet' name='eth1'/></bridge></interface>"
as_a python3 - "$W/busy.json" "$STP" 2> >(grep -v 'Introspect error' >&2) <<'PY'
import json, subprocess, sys, time
from multiprocessing import Pool
import dbus

def lists(_):
    bus = dbus.bus.BusConnection(__import__("os").environ["DBUS_SESSION_BUS_ADDRESS"])
    m = dbus.Interface(bus.get_object("org.nmiface.Interfaces1", "/org/nmiface/Interfaces1"),
                       "org.nmiface.Interfaces1.Manager")
    out = []
    for _ in range(50):
        t = time.perf_counter()
        m.ListInterfaces(dbus.UInt32(0))
        out.append((time.perf_counter() - t) * 1000)
    return out

bus = dbus.SessionBus()
m = dbus.Interface(bus.get_object("org.nmiface.Interfaces1", "/org/nmiface/Interfaces1"),
                   "org.nmiface.Interfaces1.Manager")
t0 = time.perf_counter()
apply = subprocess.Popen(["busctl", "--user", "--timeout=60", "call", "org.nmiface.Interfaces1",
                          "/org/nmiface/Interfaces1", "org.nmiface.Interfaces1.Manager", "Apply",
                          "sa{sv}", sys.argv[2], "1", "system", "b", "true"], stdout=subprocess.DEVNULL)
time.sleep(0.2)
with Pool(5) as p:
    lat = [x for r in p.map(lists, range(5)) for x in r]
lists_done = (time.perf_counter() - t0) * 1000
apply.wait()
apply_ms = (time.perf_counter() - t0) * 1000
lat.sort()
json.dump({"apply_ms": apply_ms, "lists_done_ms": lists_done, "calls": len(lat), "median": lat[len(lat) // 2],
           "max": lat[-1], "apply_rc": apply.returncode}, open(sys.argv[1], "w"))
PY
as_a $B --system undefine br1 >/dev/null 2>&1 || true

# Taps and NAT sharing as the user, against the same share made by root.
as_a $B share --nat --bridge nat0 >/dev/null
as_a hyperfine --runs "$RUNS" --warmup 2 --export-json "$W/tap.json" \
    --prepare "$B tap remove bt0 >/dev/null 2>&1; sleep 0.2; true" -n tap-add "$B tap add nat0 --name bt0" >/dev/null 2>&1
as_a $B tap remove bt0 >/dev/null 2>&1 || true
as_a hyperfine --runs "$RUNS" --warmup 2 --export-json "$W/share-user.json" \
    --prepare "$B undefine ub0 >/dev/null 2>&1; sleep 0.3; true" \
    -n share-user "$B share --nat --bridge ub0 --subnet 10.42.50.0/24" >/dev/null 2>&1
$SB exec "$NAME" -- env NMIFACE_RUNTIME_DIR="$NMIFACE_SANDBOX_DIR/root-run" hyperfine --runs "$RUNS" --warmup 2 \
    --export-json "$NMIFACE_SANDBOX_DIR/share-root.json" \
    --prepare "$B undefine rb0 >/dev/null 2>&1; sleep 0.3; true" \
    -n share-root "$B share --nat --bridge rb0 --subnet 10.42.51.0/24" >/dev/null 2>&1
cp "$NMIFACE_SANDBOX_DIR/share-root.json" "$W/" 2>/dev/null || cat "$NMIFACE_SANDBOX_DIR/share-root.json" | as_a sh -c "cat >$W/share-root.json"

# LeaseAdded: a lease line appears in nat0's lease file (written by root in NetworkManager's mount
# namespace, as dnsmasq would); the time until the service's signal reaches a client.
as_a busctl --user call org.nmiface.Interfaces1 /org/nmiface/Interfaces1 org.nmiface.Interfaces1.Manager \
    ShareNat 'a{sv}' 1 bridge s nat0 >/dev/null
NMPID=$(cat "$NMIFACE_SANDBOX_DIR/nm.pid")
: >"$NMIFACE_SANDBOX_DIR/lease-signals"
chmod 666 "$NMIFACE_SANDBOX_DIR/lease-signals"
$SB as --mount "$NAME" "$A" -- python3 -c '
import subprocess, sys, time
p = subprocess.Popen(["stdbuf", "-oL", "gdbus", "monitor", "--session", "--dest", "org.nmiface.Interfaces1"],
                     stdout=subprocess.PIPE, text=True)
with open(sys.argv[1], "a") as out:
    for line in p.stdout:
        if "LeaseAdded" in line:
            out.write(f"{time.time_ns()} {line}"); out.flush()
' "$NMIFACE_SANDBOX_DIR/lease-signals" 2>/dev/null &
LISTENER=$!
sleep 0.5
: >"$NMIFACE_SANDBOX_DIR/lease-writes"
for i in $(seq 10 $((10 + RUNS - 1))); do
    printf '%s %s\n' "$(date +%s%N)" "52:54:00:00:00:$i" >>"$NMIFACE_SANDBOX_DIR/lease-writes"
    nsenter -t "$NMPID" -m -- sh -c "echo '$(( $(date +%s) + 3600 )) 52:54:00:00:00:$i 10.42.0.$i * *' >>/var/lib/NetworkManager/dnsmasq-nat0.leases"
    sleep 0.7
done
sleep 0.5
kill "$LISTENER" 2>/dev/null || true
pkill -u "$A" -f 'gdbus monitor' 2>/dev/null || true
cp "$NMIFACE_SANDBOX_DIR/lease-writes" "$NMIFACE_SANDBOX_DIR/lease-signals" "$W/"

python3 - "$W" "$rss_kb" "$anon_kb" <<'PY'
import json, sys
d = sys.argv[1]
def load(name):
    return {r["command"]: r for r in json.load(open(f"{d}/{name}.json"))["results"]}
c = load("cold")
a = json.load(open(f"{d}/apply.json"))
import statistics as st
busy = json.load(open(f"{d}/busy.json"))
ms = lambda r: r["mean"] * 1000
sd = lambda r: r["stddev"] * 1000
print("same sandbox NetworkManager, same run, as an unprivileged user; mean +- sd over the runs")
mean = lambda k: st.mean(a[k])
for k, what in (("cli", "CLI (nmiface --system apply, a process)"), ("service", "service (Apply from a connected client)")):
    print(f"  apply bridge + port, {what}: {mean(k):6.1f} ms +- {st.stdev(a[k]):4.1f}, median {st.median(a[k]):.1f}")
print(f"  ratio service / CLI: {mean('service') / mean('cli'):.2f} (target <= 1.15)")
print(f"  cold start by D-Bus activation to the first reply: {ms(c['cold']):.1f} ms +- {sd(c['cold']):.1f}"
      f" (a running service: {ms(c['warm']):.1f} ms; target <= 100 ms)")
print(f"  idle resident memory: {int(sys.argv[2]) / 1024:.1f} MiB (target <= 10 MB), of which private"
      f" {int(sys.argv[3]) / 1024:.1f} MiB; the rest are the binary's and libc's shared file pages")
t, su, sr = load("tap"), load("share-user"), load("share-root")
print(f"  tap add to a usable tap (a whole process): {ms(t['tap-add']):.1f} ms +- {sd(t['tap-add']):.1f} (target <= 50 ms)")
print(f"  share --nat to ACTIVATED: user {ms(su['share-user']):.1f} ms, root {ms(sr['share-root']):.1f} ms:"
      f" {ms(su['share-user']) / ms(sr['share-root']):.2f}x (target <= 1.25x)")
writes = {l.split()[1]: int(l.split()[0]) for l in open(f"{d}/lease-writes") if l.strip()}
seen = {}
for l in open(f"{d}/lease-signals"):
    for mac in writes:
        if mac in l and mac not in seen:
            seen[mac] = int(l.split()[0])
lat = sorted((seen[m] - writes[m]) / 1e6 for m in seen)
if lat:
    print(f"  lease in the file to LeaseAdded at a client: median {lat[len(lat) // 2]:.0f} ms, slowest {lat[-1]:.0f} ms,"
          f" {len(lat)}/{len(writes)} seen (target <= 1 s)")
else:
    print(f"  lease in the file to LeaseAdded: no signal seen for {len(writes)} leases")
print(f"  5 clients x 50 ListInterfaces during an Apply of {busy['apply_ms']:.0f} ms (exit {busy['apply_rc']}):"
      f" median {busy['median']:.1f} ms, slowest {busy['max']:.1f} ms, all {busy['calls']} done"
      f" {busy['lists_done_ms']:.0f} ms after the Apply began")
PY
