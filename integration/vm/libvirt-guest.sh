#!/usr/bin/env bash
# Boot the real-kernel tier's guest as an unprivileged user the way a desktop user's libvirt does
# it (virsh -c qemu:///session, <interface type='bridge'>) on a bridge in a nm-sandbox.sh sandbox,
# through a qemu bridge helper; or (--qemu) with plain qemu's -netdev bridge,helper=... The guest
# must get a DHCP lease from NetworkManager's shared-mode dnsmasq and reach TARGET_IP.
#
#   integration/vm/libvirt-guest.sh [--mac MAC] [--timeout S] [--hold S] [--keep] [--qemu]
#                                   SANDBOX USER BRIDGE HELPER TARGET_IP
#   integration/vm/libvirt-guest.sh --cycles N [--hold S] [--keep] [--qemu]
#                                   SANDBOX USER BRIDGE HELPER [TARGET_IP]
#
# SANDBOX is a running `nm-sandbox.sh up SANDBOX --users`; BRIDGE a bridge in its NetworkManager
# netns (typically USER's `nmiface share --nat --bridge BRIDGE`); USER the user everything runs as
# (a name or uid); HELPER the bridge helper: an absolute path for libvirt (written to USER's
# ~/.config/libvirt/qemu.conf as bridge_helper = "HELPER"; libvirt runs it as
# `HELPER --use-vnet --br=BRIDGE --fd=N`), for --qemu the helper= value of -netdev bridge (a path,
# run as `HELPER --use-vnet --fd=N --br=BRIDGE`, or a command with spaces, which qemu runs through
# /bin/sh -c: "/usr/bin/nmiface bridge-helper").
#
# How it runs, as on a real host: as root it enters NM's netns, a private mount namespace and a
# private PID namespace (when the script ends, the kernel kills whatever is left in it: no
# libvirtd, virtlogd, qemu or helper outlives a run). There the sandbox's bus.sock is bind-mounted
# at /run/dbus/system_bus_socket and a tmpfs is on /run/user, so USER gets a normal
# XDG_RUNTIME_DIR=/run/user/UID and nothing needs DBUS_SYSTEM_BUS_ADDRESS (it is not set). USER
# gets a private HOME under the run directory (nmia and nmib have none) holding
# .config/libvirt/qemu.conf and a libvirtd.conf (warnings to ~/libvirtd.log). Commands run as USER
# with setpriv (no PAM) and a small login-like environment: HOME USER LOGNAME SHELL PATH
# XDG_RUNTIME_DIR. The first virsh autostarts USER's session libvirtd, which starts virtlogd; the
# domain (<domain type='qemu'>, direct kernel boot of integration/vm/image.sh's image with
# nmiface.mode=bare, serial console to a file, the results share as <filesystem> 9p tag "nmiface"
# accessmode='squash', one virtio NIC <interface type='bridge'> on BRIDGE) is defined, started,
# waited for, destroyed and undefined; then libvirtd and virtlogd are stopped (TERM, by their pid
# files in $XDG_RUNTIME_DIR/libvirt). The guest (integration/vm/tap-guest-in.sh) runs udhcpc, then
# pings TARGET_IP, then with --hold S stays up S seconds more; it is destroyed after --timeout
# seconds (default 90).
#
# Prints on stdout, one KEY=VALUE a line:
#   LIBVIRTD=libvirtd --timeout=120   the session daemon virsh autostarted (not with --qemu)
#   START_S=2.1          `virsh start` wall time, 30 s at most (--qemu: qemu's start to the tap
#                        fd in qemu, 30 s at most)
#   TAP=vtap0            the tap the VM got (virsh domiflist; --qemu: qemu's tun fd's fdinfo)
#   GUEST_MAC=, GUEST_IP=, DHCP_SERVER=, DNSMASQ_LEASE=, PING=ok|fail   as tap-guest.sh
#   BOOT_S=12.3          start to the lease on the console, host's clock
#   RUN_S=15.0           start to the guest's end
#   LEFT_RUNNING=none    processes left in the PID namespace after the orderly stop (else
#                        "pid:user:comm ..."; they are killed with the namespace)
#   TOTAL_S=15.6         this script, start to end
# When the start fails (the helper refused, say): START_ERROR=<virsh's error message, its lines
# joined by spaces> (--qemu: qemu's messages), and the exit status is 1.
#
# --ethernet TAP: the domain's NIC is <interface type='ethernet'><target dev='TAP' managed='no'/>
# on a tap USER made beforehand (`nmiface tap add`), which libvirt opens itself; HELPER is then
# not run (for comparing VM starts with and without the helper).
#
# --cycles N: N times start the VM paused (virsh start --paused; --qemu: qemu -S), look up its tap,
# wait --hold S (default 0), destroy it (virsh destroy; --qemu: TERM to qemu) and wait up to 10 s
# for the tap to go. After each cycle:
#   CYCLE=1  START_S=..  TAP=vtap0  DESTROY_S=..  TAP_GONE_S=0.1|never  TAPS_LEFT=0
# (TAPS_LEFT: tun/tap devices in the netns after the cycle; TAPS_BEFORE= is printed once before
# the first cycle.) Exit 0 when every cycle started; whether the taps went is for the caller to
# judge from the numbers.
#
# Exit status: 0 only when the lease is in 10.42.0.0/16 and the ping went through (--cycles: all
# cycles started); 77 (with a loud banner on stderr) when a prerequisite cannot be had (not root,
# apt fails, the image is not readable by USER); 2 on a usage error or no such sandbox; 1
# otherwise, a timeout included. On failure the console's tail, qemu's log, libvirtd's log and
# the helper's messages go to stderr, and the run directory is kept (also with --keep).
#
# Environment: NMIFACE_SANDBOX_ROOT (as nm-sandbox.sh), NMIFACE_VM_CACHE, NMIFACE_VERBOSE=1 (the
# steps on stderr).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SELF=$HERE/$(basename "${BASH_SOURCE[0]}")
PROG=integration/vm/libvirt-guest.sh
# shellcheck source=image.sh source-path=SCRIPTDIR
source "$HERE/image.sh"

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
# The same to the millisecond, for timings a bench compares.
secs3() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
# The domain's NIC: on BRIDGE through the bridge helper, or (--ethernet TAP) on a tap made
# beforehand (`nmiface tap add`), which libvirt opens itself (managed='no').
nic_xml() {
    if [[ -n $ETHERNET ]]; then
        printf "    <interface type='ethernet'>\n      <target dev='%s' managed='no'/>\n" "$ETHERNET"
    else
        printf "    <interface type='bridge'>\n      <source bridge='%s'/>\n" "$BRIDGE"
    fi
    printf "      <mac address='%s'/>\n      <model type='virtio'/>\n    </interface>\n" "$MAC"
}
banner() {
    echo "************************************************************************" >&2
    echo "*** $PROG: $*" >&2
    echo "************************************************************************" >&2
}
skip() { banner "CANNOT RUN, NO GUEST BOOTED: $*"; exit 77; }
die() { echo "$PROG: $*" >&2; exit 1; }
usage_err() { echo "$PROG: $*" >&2; exit 2; }
usage() { sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; }
say() { if [[ ${NMIFACE_VERBOSE:-} == 1 ]]; then echo "$PROG: $*" >&2; fi; }

MAC=52:54:00:4e:4d:21
TIMEOUT=90
HOLD=0
KEEP=0
CYCLES=0
QEMU=0
ETHERNET=
ALL_ARGS=("$@")
args=()
while (($#)); do
    case $1 in
    --mac) MAC=${2:?--mac needs a MAC}; shift 2 ;;
    --timeout) TIMEOUT=${2:?--timeout needs seconds}; shift 2 ;;
    --hold) HOLD=${2:?--hold needs seconds}; shift 2 ;;
    --keep) KEEP=1; shift ;;
    --cycles) CYCLES=${2:?--cycles needs a number}; shift 2 ;;
    --qemu) QEMU=1; shift ;;
    --ethernet) ETHERNET=${2:?--ethernet needs a tap}; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    --) shift; args+=("$@"); break ;;
    -*) usage_err "unknown option $1 (see --help)" ;;
    *) args+=("$1"); shift ;;
    esac
done
if ((CYCLES)); then
    ((${#args[@]} == 4 || ${#args[@]} == 5)) || usage_err "want --cycles N SANDBOX USER BRIDGE HELPER (see --help)"
else
    ((${#args[@]} == 5)) || usage_err "want SANDBOX USER BRIDGE HELPER TARGET_IP (see --help)"
fi
SANDBOX=${args[0]} USER_ARG=${args[1]} BRIDGE=${args[2]} HELPER=${args[3]} TARGET=${args[4]:-}
[[ $MAC =~ ^([0-9a-f]{2}:){5}[0-9a-f]{2}$ ]] || usage_err "bad --mac '$MAC' (want lower-case aa:bb:cc:dd:ee:ff)"
[[ $TIMEOUT =~ ^[0-9]+$ ]] || usage_err "bad --timeout '$TIMEOUT'"
[[ $HOLD =~ ^[0-9]+$ ]] || usage_err "bad --hold '$HOLD'"
[[ $CYCLES =~ ^[0-9]+$ ]] || usage_err "bad --cycles '$CYCLES'"
[[ $BRIDGE =~ ^[A-Za-z0-9_.-]{1,15}$ ]] || usage_err "bad BRIDGE name '$BRIDGE'"
[[ -z $TARGET || $TARGET =~ ^[0-9]+(\.[0-9]+){3}$ ]] || usage_err "TARGET_IP must be an IPv4 address"
[[ -n $HELPER && $HELPER != *[\"\\,$'\n']* ]] || usage_err "HELPER must be non-empty, without \" \\ , or newlines"
if ((!QEMU)) && [[ $HELPER != /* || $HELPER == *' '* ]]; then
    usage_err "HELPER must be an absolute path for libvirt (bridge_helper = \"HELPER\"), got '$HELPER'"
fi
[[ -z $ETHERNET ]] || ((!QEMU)) || usage_err "--ethernet is for libvirt, not --qemu"
[[ -z $ETHERNET || $ETHERNET =~ ^[A-Za-z0-9_.-]{1,15}$ ]] || usage_err "bad --ethernet tap '$ETHERNET'"
NS=nmi-$SANDBOX
SDIR=${NMIFACE_SANDBOX_ROOT:-/tmp/nmiface-sandbox}/$SANDBOX
DOMAIN=lvg

# ================================================================================================
# The inner part: root in NM's netns, a private mount namespace and a private PID namespace (we are
# its PID 1), entered by the outer part below with LVG_RUN, LVG_IMAGE and LVG_BUS_SOCK set.
# ================================================================================================
inner() {
    RUN=$LVG_RUN IMAGE=$LVG_IMAGE
    USER_UID=$(id -u "$USER_ARG") USER_GID=$(id -g "$USER_ARG") USER_NAME=$(id -un "$USER_ARG")
    HOME_DIR=$RUN/home SHARE=$RUN/share CONSOLE=$RUN/console.log
    local xdg=/run/user/$USER_UID

    # The host as the user's libvirt sees it: the system bus at its default address, a runtime dir.
    mount -t tmpfs -o mode=0755,size=1m nmiface-dbus /run/dbus
    touch /run/dbus/system_bus_socket
    mount --bind "$LVG_BUS_SOCK" /run/dbus/system_bus_socket
    mount -t tmpfs -o mode=0755,size=16m nmiface-user /run/user
    install -d -m 0700 -o "$USER_UID" -g "$USER_GID" "$xdg"
    UENV=(HOME="$HOME_DIR" USER="$USER_NAME" LOGNAME="$USER_NAME" SHELL=/bin/sh
        PATH=/usr/local/bin:/usr/bin:/bin XDG_RUNTIME_DIR="$xdg")
    cd "$HOME_DIR"

    local status=0
    if ((QEMU)); then
        if ((CYCLES)); then qemu_cycles || status=$?; else qemu_boot || status=$?; fi
    else
        if ((CYCLES)); then libvirt_cycles || status=$?; else libvirt_boot || status=$?; fi
        stop_daemons
    fi

    # What the orderly stop left behind (the kernel kills it with this namespace when we exit).
    local left
    ps -e -o pid=,user=,comm= >"$RUN/ps.out"
    left=$(awk -v me=$$ '$1 != me && $3 != "ps" { printf "%s%s:%s:%s", sep, $1, $2, $3; sep = " " }' "$RUN/ps.out")
    echo "LEFT_RUNNING=${left:-none}"
    return "$status"
}

# virsh_u ARGS...: virsh as USER on its session daemon, $VIRSH_BOUND (default 20) s at most: a
# daemon stuck on a helper that never answers holds the domain, and virsh would wait forever.
virsh_u() {
    timeout --kill-after=5 "${VIRSH_BOUND:-20}" setpriv --reuid="$USER_UID" --regid="$USER_GID" --init-groups -- \
        env -i "${UENV[@]}" virsh -q -c qemu:///session "$@"
}

tun_count() { local n=0 f; for f in /sys/class/net/*/tun_flags; do [[ -e $f ]] && n=$((n + 1)); done; echo "$n"; }

# wait_gone TAP: seconds until /sys/class/net/TAP is gone (10 s at most), or "never".
wait_gone() {
    local t0 i
    t0=$(now)
    for ((i = 0; i < 100; i++)); do
        if [[ ! -e /sys/class/net/$1 ]]; then secs "$t0" "$(now)"; return; fi
        sleep 0.1
    done
    echo never
}

# The tap a process holds open: the "iff:" of its tun fds (fdinfo), first one.
tap_of_pid() {
    local f
    for f in /proc/"$1"/fdinfo/*; do
        sed -n 's/^iff:[[:space:]]*//p' "$f" 2>/dev/null
    done | head -n1
}

start_error() { # the lines of a failed start's messages, joined by spaces
    sed -e 's/\r//g' -e '/^[[:space:]]*$/d' "$1" | tr '\n' ' ' | sed 's/ $//'
}

dump_logs() {
    local f
    for f in "$HOME_DIR/.cache/libvirt/qemu/log/$DOMAIN.log" "$HOME_DIR/libvirtd.log" "$RUN/qemu.log"; do
        if [[ -s $f ]]; then
            echo "== last 20 lines of $f" >&2
            tail -n 20 "$f" | sed 's/^/  /' >&2
        fi
    done
}

# ---- libvirt ------------------------------------------------------------------------------------
libvirt_start() { # libvirt_start [--paused]: virsh start; sets START_S, TAP; prints START_ERROR
    local t0 rc=0
    t0=$(now)
    VIRSH_BOUND=30 virsh_u start "$DOMAIN" "$@" >"$RUN/start.out" 2>"$RUN/start.err" || rc=$?
    START_S=$(secs3 "$t0" "$(now)")
    echo "START_S=$START_S"
    if ((rc == 124 || rc == 137)); then
        echo "START_ERROR=virsh start did not return in 30 s (a helper that never answers?)"
        return 1
    elif ((rc != 0)); then
        echo "START_ERROR=$(start_error "$RUN/start.err")"
        return 1
    fi
    TAP=$(virsh_u domiflist "$DOMAIN" | awk -v m="$MAC" 'tolower($5) == m { print $1; exit }')
    echo "TAP=${TAP:-none}"
}

libvirt_define() {
    local t0 out
    t0=$(now)
    if ! out=$(virsh_u define "$RUN/domain.xml" 2>&1); then
        echo "$PROG: virsh define failed: $out" >&2
        dump_logs
        return 1
    fi
    say "virsh define (and the session daemon's autostart): $(secs "$t0" "$(now)") s"
    local pid
    pid=$(tr -dc 0-9 <"/run/user/$USER_UID/libvirt/libvirtd.pid" 2>/dev/null || true)
    if [[ -n $pid ]]; then
        echo "LIBVIRTD=$(tr '\0' ' ' <"/proc/$pid/cmdline" | sed 's/ $//')"
        say "the session libvirtd's environment: $(tr '\0' ' ' <"/proc/$pid/environ")"
    fi
}

libvirt_boot() {
    libvirt_define || return 1
    echo "$PROG: starting domain $DOMAIN as $USER_NAME on $BRIDGE (mac $MAC, tcg, timeout ${TIMEOUT}s)" >&2
    local t_boot0 status=0
    t_boot0=$(now)
    if ! libvirt_start; then
        dump_logs
        virsh_u undefine "$DOMAIN" >/dev/null 2>&1 || true
        return 1
    fi
    # The guest powers off after its test (and --hold): wait for the domain to stop.
    local deadline state t_lease=''
    deadline=$(($(date +%s) + TIMEOUT))
    while :; do
        if [[ -z $t_lease ]] && grep -q 'NMIFACE-VM: lease ' "$CONSOLE" 2>/dev/null; then t_lease=$(now); fi
        state=$(virsh_u domstate "$DOMAIN" 2>/dev/null | head -n1 || true)
        [[ $state == "shut off" ]] && break
        if (($(date +%s) >= deadline)); then
            echo "$PROG: FAIL: the guest still ran after ${TIMEOUT}s (state '$state'): destroying it" >&2
            status=1
            break
        fi
        sleep 0.5
    done
    local t_end
    t_end=$(now)
    if [[ -n $t_lease ]]; then echo "BOOT_S=$(secs "$t_boot0" "$t_lease")"; fi
    echo "RUN_S=$(secs "$t_boot0" "$t_end")"
    virsh_u destroy "$DOMAIN" >/dev/null 2>&1 || true
    virsh_u undefine "$DOMAIN" >/dev/null 2>&1 || echo "$PROG: virsh undefine failed" >&2
    if ((status != 0)); then dump_logs; fi
    return "$status"
}

libvirt_cycles() {
    libvirt_define || return 1
    echo "TAPS_BEFORE=$(tun_count)"
    local i failed=0 t0
    for ((i = 1; i <= CYCLES; i++)); do
        echo "CYCLE=$i"
        if ! libvirt_start --paused; then failed=1; dump_logs; continue; fi
        sleep "$HOLD"
        t0=$(now)
        virsh_u destroy "$DOMAIN" >/dev/null 2>"$RUN/destroy.err" || echo "$PROG: destroy: $(cat "$RUN/destroy.err")" >&2
        echo "DESTROY_S=$(secs "$t0" "$(now)")"
        if [[ -n $TAP && $TAP != none ]]; then echo "TAP_GONE_S=$(wait_gone "$TAP")"; fi
        echo "TAPS_LEFT=$(tun_count)"
    done
    virsh_u undefine "$DOMAIN" >/dev/null 2>&1 || echo "$PROG: virsh undefine failed" >&2
    return "$failed"
}

# Stop the session daemons by their pid files, TERM then (after 5 s) KILL.
stop_daemons() {
    local f pid pids=() i
    for f in "/run/user/$USER_UID/libvirt/"*.pid; do
        [[ -e $f ]] || continue
        pid=$(tr -dc 0-9 <"$f")
        if [[ -n $pid ]] && kill -TERM "$pid" 2>/dev/null; then pids+=("$pid"); say "TERM $(basename "$f" .pid) ($pid)"; fi
    done
    for ((i = 0; i < 50; i++)); do
        local alive=()
        for pid in "${pids[@]}"; do if kill -0 "$pid" 2>/dev/null; then alive+=("$pid"); fi; done
        ((${#alive[@]})) || return 0
        sleep 0.1
    done
    echo "$PROG: session daemons still up after TERM and 5 s: ${alive[*]}; KILL" >&2
    kill -KILL "${alive[@]}" 2>/dev/null || true
}

# ---- plain qemu ---------------------------------------------------------------------------------
qemu_cmd() {
    QEMU_CMD=(qemu-system-x86_64 -accel tcg -machine pc -cpu max -smp 2 -m 768
        -nodefaults -nographic -monitor none -no-reboot
        -kernel "$IMAGE/vmlinux" -initrd "$IMAGE/initrd.cpio"
        -append "console=ttyS0 panic=-1 quiet loglevel=4 rdinit=/init nmiface.mode=bare"
        -serial "file:$CONSOLE"
        -netdev "bridge,id=n0,br=$BRIDGE,helper=$HELPER"
        -device "virtio-net-pci,netdev=n0,romfile=,mac=$MAC"
        -virtfs "local,path=$SHARE,mount_tag=nmiface,security_model=none,id=share" "$@")
}

# qemu_start [-S]: qemu as USER in the background (QPID); waits until it holds a tap (START_S,
# TAP) or exits (START_ERROR), 30 s at most.
qemu_start() {
    local t0 i
    qemu_cmd "$@"
    t0=$(now)
    # exec: QPID is qemu's own pid (setpriv and env exec too), whose fds tell its tap.
    (exec setpriv --reuid="$USER_UID" --regid="$USER_GID" --init-groups -- env -i "${UENV[@]}" "${QEMU_CMD[@]}") \
        </dev/null >"$RUN/qemu.log" 2>&1 &
    QPID=$!
    TAP=
    for ((i = 0; i < 300; i++)); do
        TAP=$(tap_of_pid "$QPID")
        [[ -n $TAP ]] && break
        kill -0 "$QPID" 2>/dev/null || break
        sleep 0.1
    done
    START_S=$(secs "$t0" "$(now)")
    echo "START_S=$START_S"
    if [[ -z $TAP ]]; then
        kill -KILL "$QPID" 2>/dev/null || true
        wait "$QPID" 2>/dev/null || true
        echo "START_ERROR=$(start_error "$RUN/qemu.log")"
        return 1
    fi
    echo "TAP=$TAP"
}

qemu_boot() {
    echo "$PROG: booting qemu as $USER_NAME on $BRIDGE through helper=$HELPER (mac $MAC, tcg, timeout ${TIMEOUT}s)" >&2
    local t_boot0 status=0 t_lease='' deadline
    t_boot0=$(now)
    qemu_start || { dump_logs; return 1; }
    deadline=$(($(date +%s) + TIMEOUT))
    while kill -0 "$QPID" 2>/dev/null; do
        if [[ -z $t_lease ]] && grep -q 'NMIFACE-VM: lease ' "$CONSOLE" 2>/dev/null; then t_lease=$(now); fi
        if (($(date +%s) >= deadline)); then
            echo "$PROG: FAIL: qemu still ran after ${TIMEOUT}s: killing it" >&2
            kill -KILL "$QPID" 2>/dev/null || true
            status=1
            break
        fi
        sleep 0.5
    done
    wait "$QPID" 2>/dev/null || true
    if [[ -z $t_lease ]] && grep -q 'NMIFACE-VM: lease ' "$CONSOLE" 2>/dev/null; then t_lease=$(now); fi
    if [[ -n $t_lease ]]; then echo "BOOT_S=$(secs "$t_boot0" "$t_lease")"; fi
    echo "RUN_S=$(secs "$t_boot0" "$(now)")"
    if ((status != 0)); then dump_logs; fi
    return "$status"
}

qemu_cycles() {
    echo "TAPS_BEFORE=$(tun_count)"
    local i failed=0 t0
    for ((i = 1; i <= CYCLES; i++)); do
        echo "CYCLE=$i"
        if ! qemu_start -S; then failed=1; dump_logs; continue; fi
        sleep "$HOLD"
        t0=$(now)
        kill -TERM "$QPID" 2>/dev/null || true
        wait "$QPID" 2>/dev/null || true
        echo "DESTROY_S=$(secs "$t0" "$(now)")"
        echo "TAP_GONE_S=$(wait_gone "$TAP")"
        echo "TAPS_LEFT=$(tun_count)"
    done
    return "$failed"
}

if [[ -n ${LVG_RUN:-} ]]; then
    inner
    exit
fi

# ================================================================================================
# The outer part: root on the host. Checks, packages, the image, the run directory, then the inner
# part in the namespaces, then the verdict.
# ================================================================================================
T_START=$(now)
[[ $(id -u) -eq 0 ]] || skip "not root: cannot enter the sandbox or switch to $USER_ARG"
USER_UID=$(id -u "$USER_ARG" 2>/dev/null) || usage_err "no such user '$USER_ARG'"
USER_NAME=$(id -un "$USER_UID")
ip netns list 2>/dev/null | awk '{print $1}' | grep -qx "$NS" || usage_err "no sandbox '$SANDBOX' (netns $NS)"
[[ -e $SDIR/polkit.rules ]] || usage_err "sandbox '$SANDBOX' was not started with --users"
[[ -S $SDIR/bus.sock ]] || usage_err "sandbox '$SANDBOX' has no bus socket $SDIR/bus.sock"
if brinfo=$(ip netns exec "$NS" ip -br addr show dev "$BRIDGE" 2>/dev/null); then
    echo "$PROG: $BRIDGE in $NS: $brinfo" >&2
else
    echo "$PROG: note: no device $BRIDGE in $NS (the helper will have to say so)" >&2
fi

vm_host_packages
if ((!QEMU)); then
    missing=()
    command -v virsh >/dev/null || missing+=(libvirt-clients)
    command -v libvirtd >/dev/null || [[ -x /usr/sbin/libvirtd ]] || missing+=(libvirt-daemon)
    [[ -e /usr/lib/x86_64-linux-gnu/libvirt/connection-driver/libvirt_driver_qemu.so ]] ||
        missing+=(libvirt-daemon-driver-qemu)
    if ((${#missing[@]})); then
        echo "$PROG: installing ${missing[*]}" >&2
        apt_update || skip "apt-get update failed"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2 ||
            skip "apt-get install ${missing[*]} failed"
    fi
fi
{ command -v setpriv && command -v unshare; } >/dev/null || skip "no setpriv or unshare (util-linux)"

vm_image_key
vm_build_image
for f in vmlinux initrd.cpio; do
    runuser -u "$USER_NAME" -- test -r "$IMAGE/$f" || skip "$IMAGE/$f is not readable by $USER_NAME"
done

# The run directory: USER's (HOME, the share, the console); short, for sun_path's 108 bytes.
RUN=$(mktemp -d /tmp/nmiface-lvg.XXXXXX)
chmod 0700 "$RUN"
mkdir -p "$RUN/home/.config/libvirt" "$RUN/share"
install -m 0755 "$HERE/tap-guest-in.sh" "$RUN/share/test.sh"
echo "$TARGET" >"$RUN/share/target"
echo "$HOLD" >"$RUN/share/hold"
: >"$RUN/console.log"
cat >"$RUN/home/.config/libvirt/qemu.conf" <<EOF
# integration/vm/libvirt-guest.sh: this user's session libvirt
bridge_helper = "$HELPER"
EOF
cat >"$RUN/home/.config/libvirt/libvirtd.conf" <<EOF
log_outputs = "3:file:$RUN/home/libvirtd.log"
EOF
cat >"$RUN/domain.xml" <<EOF
<domain type='qemu'>
  <name>$DOMAIN</name>
  <memory unit='MiB'>768</memory>
  <vcpu>2</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>$IMAGE/vmlinux</kernel>
    <initrd>$IMAGE/initrd.cpio</initrd>
    <cmdline>console=ttyS0 panic=-1 quiet loglevel=4 rdinit=/init nmiface.mode=bare</cmdline>
  </os>
  <features>
    <acpi/>
  </features>
  <cpu mode='maximum'/>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>$(command -v qemu-system-x86_64)</emulator>
    <serial type='file'>
      <source path='$RUN/console.log'/>
      <target port='0'/>
    </serial>
    <filesystem type='mount' accessmode='squash'>
      <source dir='$RUN/share'/>
      <target dir='nmiface'/>
    </filesystem>
$(nic_xml)
    <controller type='usb' model='none'/>
    <memballoon model='none'/>
  </devices>
</domain>
EOF
chown -R "$USER_UID:$(id -g "$USER_UID")" "$RUN"
[[ -d /run/dbus ]] || mkdir -p /run/dbus  # mount points of the private mount namespace
[[ -d /run/user ]] || mkdir -p /run/user

# The inner part's own bound: the guest's timeout, or 30 s a cycle, plus a minute to set up and
# stop. On expiry unshare dies and its PID namespace with everything in it.
if ((CYCLES)); then bound=$((CYCLES * (30 + HOLD) + 60)); else bound=$((TIMEOUT + 60)); fi
status=0
LVG_RUN=$RUN LVG_IMAGE=$IMAGE LVG_BUS_SOCK=$SDIR/bus.sock timeout --kill-after=10 "$bound" \
    ip netns exec "$NS" unshare --mount --propagation private --pid --fork --kill-child --mount-proc -- \
    bash "$SELF" "${ALL_ARGS[@]}" | tee "$RUN/inner.out" || status=$?
T_END=$(now)
if ((status == 124 || status == 137)); then echo "$PROG: FAIL: the run took more than ${bound}s: killed" >&2; fi

# ---- outcome ------------------------------------------------------------------------------------
SHARE=$RUN/share
if ((CYCLES == 0)) && ! grep -q '^START_ERROR=' "$RUN/inner.out"; then
    val() { if [[ -f $SHARE/result ]]; then sed -n "s/^$1=//p" "$SHARE/result" | tail -n1; fi; }
    guest_mac=$(val GUEST_MAC) guest_ip=$(val GUEST_IP) ping=$(val PING)
    echo "GUEST_MAC=${guest_mac:-$MAC}"
    echo "GUEST_IP=${guest_ip:-none}"
    echo "DHCP_SERVER=$(val DHCP_SERVER)"
    # NM's dnsmasq keeps its leases in NM's own mount namespace, root's alone: for the report only.
    if [[ -n $guest_ip && $guest_ip != none ]] && nmpid=$(tr -dc 0-9 <"$SDIR/nm.pid" 2>/dev/null) &&
        [[ -n $nmpid ]]; then
        lease=$(nsenter -t "$nmpid" -m -- sh -c 'cat /var/lib/NetworkManager/dnsmasq-*.leases' 2>/dev/null |
            grep -iF " $guest_mac $guest_ip " | tail -n1 || true)
        if [[ -n $lease ]]; then echo "DNSMASQ_LEASE=$lease"; fi
    fi
    echo "PING=${ping:-fail}"
    gstatus=$(cat "$SHARE/status" 2>/dev/null || echo none)
    if ((status == 0)); then
        if [[ $gstatus == none ]]; then
            echo "$PROG: FAIL: the guest gave back no status" >&2; status=1
        elif [[ $guest_ip != 10.42.* ]]; then
            echo "$PROG: FAIL: lease '${guest_ip:-none}' is not in 10.42.0.0/16 (guest status $gstatus)" >&2; status=1
        elif [[ $ping != ok || $gstatus != 0 ]]; then
            echo "$PROG: FAIL: $TARGET did not answer the guest (guest status $gstatus)" >&2; status=1
        fi
    fi
    if ((status != 0)); then
        echo "== last 30 lines of the guest's console" >&2
        tail -n 30 "$RUN/console.log" | tr -d '\r' | sed -E -e 's/\x1b(\[[0-9;?]*[A-Za-z]|c)//g' -e 's/^/console: /' >&2
    fi
fi
echo "TOTAL_S=$(secs "$T_START" "$T_END")"
((status == 0 || status == 1)) || status=1
if [[ $status == 0 && $KEEP != 1 ]]; then rm -rf "$RUN"; else echo "$PROG: run directory kept: $RUN" >&2; fi
exit "$status"
