#!/usr/bin/env bash
# The bridge helper against qemu's own, as an unprivileged user, on one real NetworkManager in
# one run (`nm-sandbox.sh up --users`; polkit says yes to every NetworkManager action for the
# user, who is logged in and has a NAT bridge, virbr-nat):
#
#   fd       helper start to the open tap received by the caller (integration/vm/helper-caller.py:
#            a socket pair, the helper run with only fds 0-2 and N, one descriptor back with
#            SCM_RIGHTS), libvirt's words `--use-vnet --br=virbr-nat --fd=N`:
#            `nmiface-bridge-helper` against `qemu-bridge-helper` (Debian's, made setuid root
#            and allowed virbr-nat in /etc/qemu/bridge.conf, as root would set it up, both in a
#            private mount namespace so the host keeps neither), alternated; ratio nmiface / qemu
#   gone     the caller closes the tap (a VM exits) to the tap's link gone, and after all runs the
#            taps and profiles left (0 and 0 wanted)
#   vm       `virsh -c qemu:///session start --paused` of a TCG domain as the user
#            (integration/vm/libvirt-guest.sh --cycles: the session daemon running already), its
#            NIC <interface type='bridge'> on virbr-nat through nmiface-bridge-helper against
#            <interface type='ethernet' managed='no'> on a tap made beforehand with `tap add`;
#            ratio helper / pre-made tap; and the taps left after the helper's cycles
#
# Needs root and integration/install-deps.sh. RUNS=N (default 20).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --bin nmiface
B=$PWD/target/release/nmiface
RUNS=${RUNS:-20}
NAME=h$((RANDOM % 10000))
SB=integration/nm-sandbox.sh
set -a
eval "$(NMIFACE_NM_LOG=WARN $SB up "$NAME" --users)"
set +a
WORK=$(mktemp -d)
trap '$SB down "$NAME"; rm -rf "$WORK"' EXIT
A=$NMIFACE_USER_A
$SB polkit "$NAME" "$NMIFACE_UID_A" 'org.freedesktop.NetworkManager.*' yes
$SB login "$NAME" "$A"
$SB as "$NAME" "$A" -- "$B" share --nat --bridge virbr-nat >/dev/null

# Both helpers where the user may run them; qemu's setuid root, with its ACL.
chmod 0755 "$WORK"
ln -s "$B" "$WORK/nmiface-bridge-helper"
install -o root -m 4755 /usr/lib/qemu/qemu-bridge-helper "$WORK/qemu-bridge-helper"
mkdir -p "$WORK/etc-qemu"
echo "allow virbr-nat" >"$WORK/etc-qemu/bridge.conf"
CALLER=$PWD/integration/vm/helper-caller.py

# One call as the user in NetworkManager's namespace, with /etc/qemu from $WORK (a private mount
# namespace: the host's /etc is untouched). Prints the caller's KEY=VALUE lines.
one() {
    unshare --mount --propagation private sh -c '
        mkdir -p /etc/qemu 2>/dev/null || true
        mount --bind "$1" /etc/qemu && shift && exec "$@"' sh "$WORK/etc-qemu" \
        "$SB" as "$NAME" "$A" -- python3 "$CALLER" --hold 0 -- "$@" --use-vnet --br=virbr-nat
}
# /etc/qemu may not exist on the host: the bind mount needs a directory there, made and removed
# around the run only when missing.
MADE_ETC=0
if [[ ! -d /etc/qemu ]]; then mkdir /etc/qemu; MADE_ETC=1; fi
trap '$SB down "$NAME"; rm -rf "$WORK"; if ((MADE_ETC)); then rmdir /etc/qemu; fi' EXIT

ours=() theirs=() gone=()
for i in $(seq 0 $((RUNS + 1))); do
    a=$(one "$WORK/nmiface-bridge-helper")
    q=$(one "$WORK/qemu-bridge-helper")
    grep -q '^HELPER_EXIT=0$' <<<"$a" || { echo "nmiface's helper failed: $a" >&2; exit 1; }
    grep -q '^HELPER_EXIT=0$' <<<"$q" || { echo "qemu-bridge-helper failed: $q" >&2; exit 1; }
    ((i < 2)) && continue   # warm-up
    ours+=("$(sed -n 's/^FD_MS=//p' <<<"$a")")
    theirs+=("$(sed -n 's/^FD_MS=//p' <<<"$q")")
    gone+=("$(sed -n 's/^GONE_MS=//p' <<<"$a")")
done
sleep 1
taps=$($SB exec "$NAME" -- ip -o link show type tun | wc -l)
profiles=$($SB exec "$NAME" -- nmcli -g TYPE con show | grep -c '^tun$' || true)

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
max() { printf '%s\n' "$@" | sort -n | tail -1; }
mo=$(median "${ours[@]}") mq=$(median "${theirs[@]}")
echo "fd    nmiface-bridge-helper median ${mo} ms (max $(max "${ours[@]}")), qemu-bridge-helper (setuid) median ${mq} ms (max $(max "${theirs[@]}")), ratio $(awk -v a="$mo" -v b="$mq" 'BEGIN { printf "%.2f", a / b }')x, $RUNS runs each, alternated"
echo "gone  close to link gone: median $(median "${gone[@]}") ms, max $(max "${gone[@]}") ms; left after $((RUNS + 2)) starts: $taps taps, $profiles tun profiles"

# VM starts through libvirt's session mode: the helper against a pre-made tap.
VMRUNS=${VMRUNS:-10}
starts() { sed -n 's/^START_S=//p' | tail -n +2; }   # the first start pays the daemon's autostart
h=$(bash integration/vm/libvirt-guest.sh --cycles $((VMRUNS + 1)) "$NAME" "$A" virbr-nat "$WORK/nmiface-bridge-helper" 2>/dev/null)
$SB as "$NAME" "$A" -- "$B" tap add virbr-nat --name vmtap0 >/dev/null
e=$(bash integration/vm/libvirt-guest.sh --cycles $((VMRUNS + 1)) --ethernet vmtap0 "$NAME" "$A" virbr-nat "$WORK/nmiface-bridge-helper" 2>/dev/null)
mapfile -t hs < <(starts <<<"$h")
mapfile -t es < <(starts <<<"$e")
((${#hs[@]} == VMRUNS && ${#es[@]} == VMRUNS)) || { echo "libvirt-guest.sh failed: $h $e" >&2; exit 1; }
mh=$(median "${hs[@]}") me=$(median "${es[@]}")
left=$(sed -n 's/^TAPS_LEFT=//p' <<<"$h" | sort -n | tail -1)
echo "vm    virsh start --paused: bridge helper median ${mh} s, pre-made tap (ethernet, managed='no') median ${me} s, ratio $(awk -v a="$mh" -v b="$me" 'BEGIN { printf "%.2f", a / b }')x, $VMRUNS starts each; most taps left after a helper cycle: $left"
