#!/usr/bin/env bash
# Boot a qemu guest as an unprivileged user on that user's tap in a nm-sandbox.sh sandbox, and check
# that it gets a DHCP lease from NetworkManager's shared-mode dnsmasq and reaches TARGET_IP through
# NM's masquerade.
#
#   integration/vm/tap-guest.sh [--mac MAC] [--timeout S] [--hold S] [--keep] SANDBOX USER TAP TARGET_IP
#   integration/vm/tap-guest.sh --expect-eperm SANDBOX USER TAP
#
# SANDBOX is a running `nm-sandbox.sh up SANDBOX --users`; TAP a tap device in its NetworkManager
# netns (a port of a bridge with ipv4.method=shared); USER the user qemu runs as (a name or uid).
#
# The guest is the real-kernel tier's (integration/vm/image.sh: Debian's kernel and initramfs,
# cached under $NMIFACE_VM_CACHE, built on first use), booted as USER through
# `nm-sandbox.sh as SANDBOX USER -- qemu-system-x86_64 ...` in NM's netns: -accel tcg, one
# virtio-net NIC on -netdev tap,ifname=TAP,script=no,downscript=no,vhost=off (MAC default
# 52:54:00:4e:4d:20), the serial console to a file, a 9p share owned by USER for the results, and
# nmiface.mode=bare, in which the guest's /init starts no daemon and runs tap-guest-in.sh: busybox
# udhcpc on eth0, then ping TARGET_IP, then (--hold S) stay up S seconds more, silent, so that the
# host can look at a running VM. qemu is killed after --timeout seconds (default 90).
#
# Prints on stdout, one KEY=VALUE a line:
#   GUEST_MAC=52:54:00:4e:4d:20   the guest's MAC, as the guest saw it
#   GUEST_IP=10.42.9.123          its lease (none: no lease)
#   DHCP_SERVER=10.42.9.1         the lease's server id
#   DNSMASQ_LEASE=...             that MAC's line in NM's dnsmasq-*.leases (if found there)
#   PING=ok|fail                  TARGET_IP answered (fail also when there was no lease)
#   BOOT_S=12.3                   qemu start to the lease, as seen on the host's clock
#   QEMU_S=15.0                   qemu start to qemu's exit
#   TOTAL_S=15.6                  this script, start to end
# Exit status: 0 only when the lease is in 10.42.0.0/16 and the ping went through; 77 (with a loud
# banner on stderr) when qemu or the image cannot be had (not root, apt fails, the image is not
# readable by USER); 2 on a usage error or no such sandbox; 124 on timeout; 1 otherwise. On
# failure the console's tail and qemu's messages go to stderr, and the run directory is kept.
#
# --expect-eperm: qemu as USER only tries to open TAP (same -netdev/-device, no kernel, paused with
# -S, 15 s at most). Exit 0 when qemu fails with EPERM on the tap (the "Operation not permitted"
# line is printed as QEMU_ERROR=...), 1 when qemu could open the tap or failed otherwise.
#
# Environment: NMIFACE_SANDBOX_ROOT (as nm-sandbox.sh), NMIFACE_VM_CACHE, NMIFACE_VERBOSE=1 (the
# guest's console on stderr as it comes).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SANDBOX_SH=$(cd "$HERE/.." && pwd)/nm-sandbox.sh
PROG=integration/vm/tap-guest.sh
# shellcheck source=image.sh source-path=SCRIPTDIR
source "$HERE/image.sh"

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
banner() {
    echo "************************************************************************" >&2
    echo "*** $PROG: $*" >&2
    echo "************************************************************************" >&2
}
# Missing prerequisites (image.sh calls these too).
skip() { banner "CANNOT RUN, NO GUEST BOOTED: $*"; exit 77; }
die() { echo "$PROG: $*" >&2; exit 1; }
usage_err() { echo "$PROG: $*" >&2; exit 2; }
usage() { sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; }

MAC=52:54:00:4e:4d:20
TIMEOUT=90
HOLD=0
KEEP=0
EXPECT_EPERM=0
args=()
while (($#)); do
    case $1 in
    --mac) MAC=${2:?--mac needs a MAC}; shift 2 ;;
    --timeout) TIMEOUT=${2:?--timeout needs seconds}; shift 2 ;;
    --hold) HOLD=${2:?--hold needs seconds}; shift 2 ;;
    --keep) KEEP=1; shift ;;
    --expect-eperm) EXPECT_EPERM=1; shift ;;
    -h | --help) usage; exit 0 ;;
    --) shift; args+=("$@"); break ;;
    -*) usage_err "unknown option $1 (see --help)" ;;
    *) args+=("$1"); shift ;;
    esac
done
if ((EXPECT_EPERM)); then
    ((${#args[@]} == 3)) || usage_err "want --expect-eperm SANDBOX USER TAP (see --help)"
else
    ((${#args[@]} == 4)) || usage_err "want SANDBOX USER TAP TARGET_IP (see --help)"
fi
SANDBOX=${args[0]} USER_ARG=${args[1]} TAP=${args[2]} TARGET=${args[3]:-}
[[ $MAC =~ ^([0-9a-f]{2}:){5}[0-9a-f]{2}$ ]] || usage_err "bad --mac '$MAC' (want lower-case aa:bb:cc:dd:ee:ff)"
[[ $TIMEOUT =~ ^[0-9]+$ ]] || usage_err "bad --timeout '$TIMEOUT'"
[[ $HOLD =~ ^[0-9]+$ ]] || usage_err "bad --hold '$HOLD'"
[[ $TAP =~ ^[A-Za-z0-9_.-]{1,15}$ ]] || usage_err "bad TAP name '$TAP'"
[[ -z $TARGET || $TARGET =~ ^[0-9]+(\.[0-9]+){3}$ ]] || usage_err "TARGET_IP must be an IPv4 address"

T_START=$(now)
[[ $(id -u) -eq 0 ]] || skip "not root: nm-sandbox.sh cannot run anything as $USER_ARG"
USER_UID=$(id -u "$USER_ARG" 2>/dev/null) || usage_err "no such user '$USER_ARG'"
USER_NAME=$(id -un "$USER_UID")
NS=nmi-$SANDBOX
ip netns list 2>/dev/null | awk '{print $1}' | grep -qx "$NS" || usage_err "no sandbox '$SANDBOX' (netns $NS)"
SDIR=${NMIFACE_SANDBOX_ROOT:-/tmp/nmiface-sandbox}/$SANDBOX
[[ -e $SDIR/polkit.rules ]] || usage_err "sandbox '$SANDBOX' was not started with --users"
tapinfo=$(ip netns exec "$NS" ip -d link show dev "$TAP" 2>/dev/null) || die "no device $TAP in $NS"
echo "$PROG: $TAP in $NS: $(echo "$tapinfo" | grep -o 'master [^ ]*\|tun type .*' | sed 's/ addrgenmode.*//' |
    tr '\n' ' ')" >&2

vm_host_packages
RUN=$(mktemp -d "${TMPDIR:-/tmp}/nmiface-tapguest.XXXXXX")
chmod 0700 "$RUN"
chown "$USER_UID" "$RUN"
cleanup_run() {
    if [[ ${1:-1} == 0 && $KEEP != 1 ]]; then rm -rf "$RUN"; else echo "$PROG: run directory kept: $RUN" >&2; fi
}
nic=(-netdev "tap,id=n0,ifname=$TAP,script=no,downscript=no,vhost=off"
    -device "virtio-net-pci,netdev=n0,romfile=,mac=$MAC")

# ---- --expect-eperm ----------------------------------------------------------------------------
if ((EXPECT_EPERM)); then
    rc=0
    "$SANDBOX_SH" as "$SANDBOX" "$USER_NAME" -- timeout --kill-after=5 15 \
        qemu-system-x86_64 -accel tcg -machine pc -nodefaults -display none -monitor none -S \
        "${nic[@]}" </dev/null >"$RUN/qemu.log" 2>&1 || rc=$?
    msg=$(grep -m1 -i 'tun\|tap' "$RUN/qemu.log" || head -n1 "$RUN/qemu.log")
    echo "QEMU_EXIT=$rc"
    echo "QEMU_ERROR=$msg"
    if ((rc == 124 || rc == 137)); then
        echo "$PROG: qemu as $USER_NAME opened $TAP (no EPERM): it ran until the timeout" >&2
        cleanup_run 1; exit 1
    elif ((rc != 0)) && grep -q 'Operation not permitted' "$RUN/qemu.log"; then
        echo "EPERM=yes"
        cleanup_run 0; exit 0
    fi
    echo "EPERM=no"
    echo "$PROG: qemu as $USER_NAME failed otherwise (exit $rc):" >&2
    sed 's/^/qemu: /' "$RUN/qemu.log" >&2
    cleanup_run 1; exit 1
fi

# ---- the image ---------------------------------------------------------------------------------
vm_image_key
vm_build_image
for f in vmlinux initrd.cpio; do
    runuser -u "$USER_NAME" -- test -r "$IMAGE/$f" || skip "$IMAGE/$f is not readable by $USER_NAME"
done

# ---- boot --------------------------------------------------------------------------------------
SHARE=$RUN/share
mkdir -p "$SHARE"
install -m 0755 "$HERE/tap-guest-in.sh" "$SHARE/test.sh"
echo "$TARGET" >"$SHARE/target"
echo "$HOLD" >"$SHARE/hold"
chown -R "$USER_UID" "$SHARE"
CONSOLE=$RUN/console.log
runuser -u "$USER_NAME" -- touch "$CONSOLE"

echo "$PROG: booting $KPKG as $USER_NAME on $TAP (mac $MAC, tcg, timeout ${TIMEOUT}s)" >&2
T_BOOT0=$(now)
"$SANDBOX_SH" as "$SANDBOX" "$USER_NAME" -- timeout --kill-after=5 "$TIMEOUT" \
    qemu-system-x86_64 -accel tcg -machine pc -cpu max -smp 2 -m 768 \
    -nodefaults -nographic -monitor none -no-reboot \
    -kernel "$IMAGE/vmlinux" -initrd "$IMAGE/initrd.cpio" \
    -append "console=ttyS0 panic=-1 quiet loglevel=4 rdinit=/init nmiface.mode=bare" \
    -serial "file:$CONSOLE" \
    "${nic[@]}" \
    -virtfs "local,path=$SHARE,mount_tag=nmiface,security_model=none,id=share" \
    </dev/null >"$RUN/qemu.log" 2>&1 &
QPID=$!

# Note when the lease shows on the console (the host's clock).
tail -n +1 -s 0.1 -F --pid=$QPID "$CONSOLE" 2>/dev/null | while IFS= read -r line; do
    line=${line%$'\r'}
    if [[ $line == *"NMIFACE-VM: lease "* && ! -f $RUN/t-lease ]]; then now >"$RUN/t-lease"; fi
    if [[ ${NMIFACE_VERBOSE:-} == 1 ]]; then printf 'guest: %s\n' "$line" >&2; fi
done || true
qrc=0
wait "$QPID" || qrc=$?
T_END=$(now)

# ---- outcome -----------------------------------------------------------------------------------
val() { if [[ -f $SHARE/result ]]; then sed -n "s/^$1=//p" "$SHARE/result" | tail -n1; fi; }
guest_mac=$(val GUEST_MAC) guest_ip=$(val GUEST_IP) ping=$(val PING)
echo "GUEST_MAC=${guest_mac:-$MAC}"
echo "GUEST_IP=${guest_ip:-none}"
echo "DHCP_SERVER=$(val DHCP_SERVER)"
# NM's dnsmasq keeps its leases in NM's own mount namespace, root's alone (0700, as on Debian):
# read as root there, for the report only.
if [[ -n $guest_ip && $guest_ip != none ]] && nmpid=$(tr -dc 0-9 <"$SDIR/nm.pid" 2>/dev/null) &&
    [[ -n $nmpid ]]; then
    lease=$(nsenter -t "$nmpid" -m -- sh -c 'cat /var/lib/NetworkManager/dnsmasq-*.leases' 2>/dev/null |
        grep -iF " $guest_mac $guest_ip " | tail -n1 || true)
    if [[ -n $lease ]]; then echo "DNSMASQ_LEASE=$lease"; fi
fi
echo "PING=${ping:-fail}"
if [[ -f $RUN/t-lease ]]; then echo "BOOT_S=$(secs "$T_BOOT0" "$(cat "$RUN/t-lease")")"; fi
echo "QEMU_S=$(secs "$T_BOOT0" "$T_END")"
echo "TOTAL_S=$(secs "$T_START" "$T_END")"

gstatus=$(cat "$SHARE/status" 2>/dev/null || echo none)
status=1
if ((qrc == 124 || qrc == 137)); then
    echo "$PROG: FAIL: qemu killed after ${TIMEOUT}s" >&2
    status=124
elif [[ $gstatus == none ]]; then
    echo "$PROG: FAIL: the guest gave back no status (qemu exit $qrc)" >&2
elif [[ $guest_ip != 10.42.* ]]; then
    echo "$PROG: FAIL: lease '${guest_ip:-none}' is not in 10.42.0.0/16 (guest status $gstatus)" >&2
elif [[ $ping != ok || $gstatus != 0 ]]; then
    echo "$PROG: FAIL: $TARGET did not answer the guest (guest status $gstatus)" >&2
else
    status=0
fi
if ((status != 0)); then
    [[ -s $RUN/qemu.log ]] && sed 's/^/qemu: /' "$RUN/qemu.log" >&2
    echo "== last 30 lines of the guest's console" >&2
    tail -n 30 "$CONSOLE" | tr -d '\r' | sed -E -e 's/\x1b(\[[0-9;?]*[A-Za-z]|c)//g' -e 's/^/console: /' >&2
fi
cleanup_run "$status"
exit "$status"
