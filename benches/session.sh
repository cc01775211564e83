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
#   lease    a "VM" (a network namespace running busybox udhcpc, its frames carried to and from
#            the user's tap on nat0 by a relay) gets a lease from NetworkManager's dnsmasq; from
#            the DHCP ACK leaving the tap to LeaseAdded at a client, on a stock-permission host
#            (the lease file root's, 0700; the service outside NetworkManager's mount namespace:
#            the neighbour table is all it reads); a new MAC each run
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
eval "$($SB session-bus "$NAME" "$A" "$SVC")"
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

# Busy: an Apply, then a Create, each held ~2 s by STP, and 5 clients calling ListInterfaces
# meanwhile (a Create once held a lock that hung every later call).
STP="<interface type='bridge' name='br1'><protocol family='ipv4'><ip address='198.51.100.1' prefix='24'/></protocol><bridge stp='on' delay='2'><interface type='ethernet' name='eth1'/></bridge></interface>"
busy() {
as_a python3 - "$1" "$STP" "$2" 2> >(grep -v 'Introspect error' >&2) <<'PY'
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
call = ["busctl", "--user", "--timeout=60", "call", "org.nmiface.Interfaces1"]
if sys.argv[3] == "create":
    obj = m.InterfaceDefineXML(sys.argv[2], dbus.UInt32(4))
    change = call + [str(obj), "org.nmiface.Interfaces1.Interface", "Create", "u", "0"]
else:
    change = call + ["/org/nmiface/Interfaces1", "org.nmiface.Interfaces1.Manager", "Apply",
                     "sa{sv}", sys.argv[2], "1", "system", "b", "true"]
t0 = time.perf_counter()
apply = subprocess.Popen(change, stdout=subprocess.DEVNULL)
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
}
busy "$W/busy.json" apply
busy "$W/busy-create.json" create

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

# LeaseAdded: a DHCP ACK from NetworkManager's dnsmasq to a "VM" behind A's tap, to the service's
# signal at a client. The VM is netns nmi-NAME-lv (vmeth0, udhcpc); a relay run by root in
# NetworkManager's netns carries frames between A's tap bl0 (root may attach to any tap) and the
# VM's veth peer lvh0, and notes the host's clock when the VM's DHCP REQUEST goes into the tap and
# when the ACK comes out of it.
as_a busctl --user call org.nmiface.Interfaces1 /org/nmiface/Interfaces1 org.nmiface.Interfaces1.Manager \
    ShareNat 'a{sv}' 1 bridge s nat0 >/dev/null
as_a $B tap add nat0 --name bl0 >/dev/null
$SB vm "$NAME" lv lvh0
L=$NMIFACE_SANDBOX_DIR
: >"$L/lease-signals"
: >"$L/lease-acks"
chmod 666 "$L/lease-signals"
$SB exec "$NAME" -- python3 - bl0 lvh0 "$L/lease-acks" <<'PY' &
import fcntl, os, select, socket, struct, sys, time
tap, peer, acks = sys.argv[1], sys.argv[2], sys.argv[3]
fd = os.open("/dev/net/tun", os.O_RDWR)
fcntl.ioctl(fd, 0x400454ca, struct.pack("16sH", tap.encode(), 0x0002 | 0x1000))  # IFF_TAP | IFF_NO_PI
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
s.bind((peer, 0))
end = time.time() + 600
def dhcp(f, port, kind):
    # Ethernet, IPv4, UDP to `port`, DHCP message type (option 53) `kind`: the client's MAC.
    if len(f) < 282 or f[12:14] != b"\x08\x00" or f[23] != 17:
        return None
    udp = 14 + (f[14] & 15) * 4
    if f[udp + 2:udp + 4] != port.to_bytes(2, "big"):
        return None
    bootp = udp + 8
    opts = f[bootp + 240:]
    i = 0
    while i + 1 < len(opts) and opts[i] != 255:
        if opts[i] == 0:
            i += 1
            continue
        if opts[i] == 53 and opts[i + 2] == kind:
            return f[bootp + 28:bootp + 34].hex(":")
        i += 2 + opts[i + 1]
    return None
while time.time() < end:
    r, _, _ = select.select([fd, s], [], [], 1)
    if fd in r:
        f = os.read(fd, 65536)
        t = time.time_ns()
        s.send(f)
        mac = dhcp(f, 68, 5)
        if mac:
            with open(acks, "a") as out:
                out.write(f"{t} {mac} ack\n")
    if s in r:
        f, addr = s.recvfrom(65536)
        if addr[2] != socket.PACKET_OUTGOING:
            t = time.time_ns()
            os.write(fd, f)
            mac = dhcp(f, 67, 3)
            if mac:
                with open(acks, "a") as out:
                    out.write(f"{t} {mac} request\n")
PY
RELAY=$!
$SB as "$NAME" "$A" -- python3 -c '
import subprocess, sys, time
p = subprocess.Popen(["stdbuf", "-oL", "gdbus", "monitor", "--session", "--dest", "org.nmiface.Interfaces1"],
                     stdout=subprocess.PIPE, text=True)
with open(sys.argv[1], "a") as out:
    for line in p.stdout:
        if "LeaseAdded" in line:
            out.write(f"{time.time_ns()} {line}"); out.flush()
' "$L/lease-signals" 2>/dev/null &
LISTENER=$!
sleep 1
for i in $(seq 10 $((10 + RUNS - 1))); do
    mac=52:54:00:00:01:$i
    $SB vm-exec "$NAME" lv -- sh -c "ip link set vmeth0 down && ip link set vmeth0 address $mac && ip link set vmeth0 up"
    $SB vm-exec "$NAME" lv -- timeout 20 busybox udhcpc -i vmeth0 -n -q -t 5 -T 1 -s /bin/true >/dev/null 2>&1 ||
        echo "lease run $i: no lease" >&2
    sleep 1.5
done
sleep 0.5
kill "$LISTENER" "$RELAY" 2>/dev/null || true
pkill -u "$A" -f 'gdbus monitor' 2>/dev/null || true
cp "$L/lease-acks" "$L/lease-signals" "$W/"

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
# The first REQUEST and the first ACK of each MAC, and its first LeaseAdded.
marks = {"request": {}, "ack": {}}
for l in open(f"{d}/lease-acks"):
    if len(l.split()) == 3:
        t, mac, kind = l.split()
        marks[kind].setdefault(mac, int(t))
seen = {}
for l in open(f"{d}/lease-signals"):
    for mac in marks["ack"]:
        if mac in l and mac not in seen:
            seen[mac] = int(l.split()[0])
def lat(kind):
    return sorted((seen[m] - marks[kind][m]) / 1e6 for m in seen if m in marks[kind])
req, ack = lat("request"), lat("ack")
if req and ack:
    print(f"  a VM behind the user's tap (lease file root's, 0700), DHCP ACK out of the tap to LeaseAdded at a"
          f" client: median {ack[len(ack) // 2]:.0f} ms, slowest {ack[-1]:.0f} ms, {len(seen)}/{len(marks['ack'])} seen"
          f" (target <= 1 s); below 0 the signal came first (the VM's REQUEST into the tap to LeaseAdded: median"
          f" {req[len(req) // 2]:.0f} ms): dnsmasq puts the VM in the neighbour table when it unicasts its OFFER")
else:
    print(f"  DHCP ACK to LeaseAdded: no signal seen for {len(marks['ack'])} ACKs")
print(f"  5 clients x 50 ListInterfaces during an Apply of {busy['apply_ms']:.0f} ms (exit {busy['apply_rc']}):"
      f" median {busy['median']:.1f} ms, slowest {busy['max']:.1f} ms, all {busy['calls']} done"
      f" {busy['lists_done_ms']:.0f} ms after the Apply began")
create = json.load(open(f"{d}/busy-create.json"))
print(f"  5 clients x 50 ListInterfaces during a Create of {create['apply_ms']:.0f} ms (exit {create['apply_rc']}):"
      f" median {create['median']:.1f} ms, slowest {create['max']:.1f} ms, all {create['calls']} done"
      f" {create['lists_done_ms']:.0f} ms after the Create began")
PY
