#!/usr/bin/env bash
# nm-sandbox.sh: a throwaway, real NetworkManager in network namespaces.
#
# See shared/docs/networkmanager-sandbox.md (Tier 1) for the recipe and
# why each piece is there. Run `nm-sandbox.sh --help` for the interface.
set -euo pipefail

PROG=${0##*/}
ROOT=${NMIFACE_SANDBOX_ROOT:-/tmp/nmiface-sandbox}
NM_BIN=${NMIFACE_NM_BIN:-NetworkManager}   # override only to test failure paths
NM_LOG_LEVEL=${NMIFACE_NM_LOG:-INFO}
READY_TIMEOUT=${NMIFACE_READY_TIMEOUT:-20}  # seconds
WIRE_ADDR=192.168.77.1/24
DHCP_RANGE=192.168.77.50,192.168.77.60,1h

usage() {
    cat <<EOF
Usage:
  $PROG up NAME [--nics N] [--dhcp] [--mac IF=MAC]...
                                        start sandbox NAME; prints env lines
  $PROG down NAME                       stop and remove sandbox NAME (idempotent)
  $PROG exec NAME -- CMD...             run CMD in NM's netns, bus env set
  $PROG wire NAME -- CMD...             run CMD in the wire (LAN) netns
  $PROG vm NAME VMNAME IFNAME           add "VM" netns nmi-NAME-VMNAME holding
                                        vmeth0; its peer IFNAME is in NM's netns
  $PROG vm-exec NAME VMNAME -- CMD...   run CMD in that VM netns

NAME and VMNAME: 1-8 chars of [a-z0-9] (VMNAME not "w").

'up' creates, under \$NMIFACE_SANDBOX_ROOT/NAME (default /tmp/nmiface-sandbox/NAME):
a private system dbus-daemon, netns nmi-NAME running NetworkManager with N veth
NICs eth0..eth{N-1} (default 4), and netns nmi-NAME-w holding their peers
eth0p.. (up; eth0p has $WIRE_ADDR). --dhcp also runs dnsmasq on eth0p
(range ${DHCP_RANGE%,*}). --mac eth1=52:54:00:12:34:56 gives a NIC that MAC
before NM starts (NM matches a profile's MAC against the MAC a device had when
it appeared). It waits until NM is ready and its NICs are managed,
then prints exactly these lines on stdout:
  DBUS_SYSTEM_BUS_ADDRESS=unix:path=DIR/bus.sock
  NMIFACE_SANDBOX_DIR=DIR
  NMIFACE_NETNS=nmi-NAME
  NMIFACE_WIRE_NETNS=nmi-NAME-w
  NMIFACE_KEYFILE_DIR=DIR/conn
The lines are plain KEY=VALUE (no quoting needed): to export them in a shell,
  set -a; eval "\$($PROG up t1)"; set +a
On failure it removes everything it made, prints the tail of nm.log on stderr
and exits non-zero.

Environment: NMIFACE_SANDBOX_ROOT, NMIFACE_NM_LOG (NM log level, default INFO),
NMIFACE_VERBOSE=1 (progress on stderr), NMIFACE_READY_TIMEOUT (default 20 s),
NMIFACE_NM_BIN (NetworkManager binary; for testing failure handling).
EOF
}

die()  { echo "$PROG: error: $*" >&2; exit 1; }
log()  { if [[ ${NMIFACE_VERBOSE:-0} == 1 ]]; then echo "$PROG: $*" >&2; fi; }

# ---------------------------------------------------------------- naming ----

valid_name() { [[ $1 =~ ^[a-z0-9]{1,8}$ ]]; }

# Set the global names for sandbox $1. Kept short: netns names are free-form,
# but the bus socket path must fit in sun_path (108 bytes).
set_names() {
    NAME=$1
    valid_name "$NAME" || die "bad sandbox name '$NAME' (want 1-8 chars of [a-z0-9])"
    DIR=$ROOT/$NAME
    NS=nmi-$NAME
    WNS=nmi-$NAME-w
    BUS_SOCK=$DIR/bus.sock
    BUS_ADDR=unix:path=$BUS_SOCK
    # NM gets a private, empty /run: the state dir must not live there.
    [[ $DIR == /* && $DIR != /run/* && $DIR != /var/run/* ]] ||
        die "NMIFACE_SANDBOX_ROOT must be absolute and not under /run (got '$ROOT')"
    [[ $DIR =~ ^[A-Za-z0-9/._-]+$ ]] ||
        die "NMIFACE_SANDBOX_ROOT must contain only [A-Za-z0-9/._-] (got '$ROOT')"
    (( ${#BUS_SOCK} < 100 )) || die "socket path too long: $BUS_SOCK"
}

# All namespaces of the sandbox: nmi-NAME and nmi-NAME-* (wire and VMs).
# NAME has no '-', so nmi-t1-* can never belong to another sandbox (e.g. t10).
sandbox_netns() {
    ip netns list 2>/dev/null | awk '{print $1}' |
        grep -E "^${NS}(-[a-z0-9]+)?\$" || true
}

netns_exists() { ip netns list 2>/dev/null | awk '{print $1}' | grep -qx "$1"; }

# ------------------------------------------------------------------- up ----

make_state_dir() {
    mkdir -p "$DIR/conn" "$DIR/conf.d" "$DIR/dnsmasq-shared.d"
    echo no-ping >"$DIR/dnsmasq-shared.d/nmiface.conf"
    chmod 0700 "$DIR"
}

# A private "system" bus. The eavesdrop allow lines are required: without
# them every call on this bus hung (see the doc).
start_bus() {
    log "starting dbus-daemon on $BUS_SOCK"
    cat >"$DIR/bus.conf" <<EOF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=$BUS_SOCK</listen>
  <auth>EXTERNAL</auth>
  <pidfile>$DIR/bus.pid</pidfile>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_type="method_call"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
  </policy>
</busconfig>
EOF
    # --fork returns once the socket listens. Detach stdio, or a caller
    # doing $(nm-sandbox.sh up) would wait for the daemon to close stdout.
    dbus-daemon --config-file="$DIR/bus.conf" --fork </dev/null >/dev/null 2>>"$DIR/bus.log" ||
        die "dbus-daemon failed to start (see $DIR/bus.log)"
}

make_netns() {
    log "creating netns $NS and $WNS"
    ip netns add "$NS"
    ip netns add "$WNS"
    ip -n "$NS" link set lo up
    ip -n "$WNS" link set lo up
}

# NICs eth0..eth{N-1} in NM's netns; peers ethNp in the wire netns, up, so
# that NM's side gets carrier as soon as NM sets it up.
make_nics() {
    local i
    for (( i = 0; i < NICS; i++ )); do
        ip -n "$NS" link add "eth$i" type veth peer name "eth${i}p" netns "$WNS"
        ip -n "$WNS" link set "eth${i}p" up
    done
    local m
    for m in "${MACS[@]}"; do
        ip -n "$NS" link set "${m%%=*}" address "${m#*=}"
    done
    if (( NICS > 0 )); then
        ip -n "$WNS" addr add "$WIRE_ADDR" dev eth0p
    fi
}

# A DHCP server on the wire side of eth0. --port=0 disables DNS (so it also
# hands out no DNS server); --no-ping skips the ping probe before an offer;
# the lease file is per sandbox; --user=root because Debian's dnsmasq-base
# has no "dnsmasq" user and dnsmasq must write into $DIR.
start_dnsmasq() {
    log "starting dnsmasq in $WNS on eth0p"
    (( NICS > 0 )) || die "--dhcp needs at least one NIC"
    ip netns exec "$WNS" dnsmasq \
        --conf-file=/dev/null --interface=eth0p --bind-interfaces --port=0 \
        --dhcp-range="$DHCP_RANGE" --dhcp-authoritative --no-ping \
        --dhcp-leasefile="$DIR/dnsmasq.leases" --pid-file="$DIR/dnsmasq.pid" \
        --log-facility="$DIR/dnsmasq.log" --log-dhcp --user=root --group=root \
        </dev/null >/dev/null 2>>"$DIR/dnsmasq.log" ||
        die "dnsmasq failed to start (see $DIR/dnsmasq.log)"
}

write_nm_conf() {
    # dns/rc-manager/hostname-mode keep NM away from the host's
    # /etc/resolv.conf and hostname (the UTS namespace is shared);
    # --config-dir/--system-config-dir point at an empty dir so the host's
    # conf.d snippets do not leak in.
    cat >"$DIR/NM.conf" <<EOF
[main]
plugins=keyfile
no-auto-default=*
dhcp=internal
rc-manager=unmanaged
hostname-mode=none
auth-polkit=false

[keyfile]
path=$DIR/conn

[logging]
level=$NM_LOG_LEVEL
EOF
}

# The script NM runs under, inside `ip netns exec NS unshare -m`.
write_nm_start_script() {
    cat >"$DIR/nm-start.sh" <<EOF
#!/bin/sh
set -e
# Nothing mounted below may propagate back to the host.
mount --make-rprivate /
# NM's runtime and state dirs: private and empty for every sandbox. All of
# /run, not just /run/NetworkManager: NM's shared-mode dnsmasq keeps its
# pidfile in /run/nm-dnsmasq-IFACE.pid and NM kills whatever pid it finds
# there, so a shared /run would let one sandbox kill another's dnsmasq.
mount -t tmpfs -o mode=0755 tmpfs /run
mkdir -p /run/NetworkManager /var/lib/NetworkManager
mount -t tmpfs -o mode=0755 tmpfs /var/lib/NetworkManager
# NM only uses udev when /sys is writable; there is no udev here, so with a
# writable /sys every device would stay unmanaged (platform-init). "bind"
# makes only this mount read-only, not the netns's sysfs superblock (which
# \`ip netns exec\` shares), and a writable bind of the virtual net devices
# lets NM still write bridge and bridge-port options there.
mount -o remount,bind,ro /sys
mount --bind /sys/devices/virtual/net /sys/devices/virtual/net
mount -o remount,bind,rw /sys/devices/virtual/net
# NM's shared-mode dnsmasq reads this dir: give it our own, whose no-ping
# saves the ~3 s ping probe dnsmasq makes before each first DHCP offer.
if [ -d /etc/NetworkManager/dnsmasq-shared.d ]; then
    mount --bind "$DIR/dnsmasq-shared.d" /etc/NetworkManager/dnsmasq-shared.d
fi
echo \$\$ >"$DIR/nm.pid"
exec "$NM_BIN" --no-daemon --debug --config="$DIR/NM.conf" \\
    --config-dir="$DIR/conf.d" --system-config-dir="$DIR/conf.d"
EOF
}

start_nm() {
    log "starting $NM_BIN in $NS"
    write_nm_conf
    write_nm_start_script
    # setsid: NM must not die with the caller's terminal/session.
    DBUS_SYSTEM_BUS_ADDRESS=$BUS_ADDR \
        setsid ip netns exec "$NS" unshare -m sh "$DIR/nm-start.sh" \
        </dev/null >/dev/null 2>>"$DIR/nm.log" &
    NM_LAUNCHER_PID=$!
}

busctl_nm() { busctl --address="$BUS_ADDR" "$@" 2>/dev/null; }

# Running and not a zombie (a dead child of ours stays a zombie until reaped,
# and kill -0 would still succeed on it).
alive() {
    local stat
    stat=$(cat /proc/"$1"/stat 2>/dev/null) || return 1
    stat=${stat##*) }
    [[ ${stat:0:1} != Z ]]
}

# The launcher pid becomes NM's pid (every step execs); the pidfile covers
# a setsid that had to fork.
nm_alive() {
    alive "$NM_LAUNCHER_PID" && return 0
    local p
    p=$(pid_from_file "$DIR/nm.pid") && alive "$p"
}

# True once NM owns its bus name, finished startup, and manages every NIC
# (device state >= 30 "disconnected"; 10 unmanaged, 20 unavailable = no carrier).
nm_ready() {
    busctl_nm call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus \
        NameHasOwner s org.freedesktop.NetworkManager | grep -qx 'b true' || return 1
    busctl_nm get-property org.freedesktop.NetworkManager /org/freedesktop/NetworkManager \
        org.freedesktop.NetworkManager Startup | grep -qx 'b false' || return 1
    local i path state
    for (( i = 0; i < NICS; i++ )); do
        path=$(busctl_nm call org.freedesktop.NetworkManager /org/freedesktop/NetworkManager \
            org.freedesktop.NetworkManager GetDeviceByIpIface s "eth$i") || return 1
        path=${path#o }; path=${path//\"/}
        state=$(busctl_nm get-property org.freedesktop.NetworkManager "$path" \
            org.freedesktop.NetworkManager.Device State) || return 1
        (( ${state#u } >= 30 )) || return 1
    done
}

wait_nm_ready() {
    # Microseconds; $SECONDS would be off by up to a second.
    local deadline=$(( ${EPOCHREALTIME/./} + READY_TIMEOUT * 1000000 ))
    until nm_ready; do
        nm_alive || die "$NM_BIN exited during startup"
        (( ${EPOCHREALTIME/./} < deadline )) || die "NetworkManager not ready after ${READY_TIMEOUT}s"
        sleep 0.05
    done
    log "NetworkManager ready"
}

print_env() {
    local lines
    lines="DBUS_SYSTEM_BUS_ADDRESS=$BUS_ADDR
NMIFACE_SANDBOX_DIR=$DIR
NMIFACE_NETNS=$NS
NMIFACE_WIRE_NETNS=$WNS
NMIFACE_KEYFILE_DIR=$DIR/conn"
    echo "$lines" >"$DIR/env"   # for later `exec`, and for humans
    echo "$lines"
}

# EXIT trap of `up`: on failure, show why and remove the half-made sandbox.
up_cleanup() {
    local rc=$?
    (( rc == 0 )) && return
    if [[ -s $DIR/nm.log ]]; then
        echo "$PROG: --- last lines of $DIR/nm.log ---" >&2
        tail -n 25 "$DIR/nm.log" >&2
    fi
    echo "$PROG: 'up $NAME' failed; cleaning up" >&2
    do_down || true
    exit "$rc"
}

cmd_up() {
    [[ $# -ge 1 ]] || die "up: missing NAME (see --help)"
    set_names "$1"; shift
    NICS=4 DHCP=0 MACS=()
    while (( $# )); do
        case $1 in
            --mac) [[ ${2:-} =~ ^eth[0-9]+=([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$ ]] || die "--mac wants ethN=MAC"
                   MACS+=("$2"); shift 2 ;;
            --nics) [[ ${2:-} =~ ^[0-9]+$ ]] || die "--nics wants a number"
                    NICS=$2; shift 2 ;;
            --dhcp) DHCP=1; shift ;;
            *) die "up: unknown option '$1'" ;;
        esac
    done
    (( NICS <= 64 )) || die "--nics: at most 64"
    [[ $READY_TIMEOUT =~ ^[0-9]+$ ]] || die "NMIFACE_READY_TIMEOUT must be whole seconds"
    [[ $(id -u) -eq 0 ]] || die "must run as root"
    # Refuse before arming the trap: the cleanup must never hit a live sandbox.
    if [[ -e $DIR ]] || [[ -n $(sandbox_netns) ]]; then
        die "sandbox '$NAME' exists (dir $DIR or netns $NS*); run '$PROG down $NAME' first"
    fi

    trap up_cleanup EXIT
    # Turn signals into an exit so the EXIT trap cleans up then too.
    trap 'exit 130' INT
    trap 'exit 143' TERM HUP
    make_state_dir
    start_bus
    make_netns
    make_nics
    (( DHCP )) && start_dnsmasq
    start_nm
    wait_nm_ready
    trap - EXIT INT TERM HUP
    print_env
}

# ----------------------------------------------------------------- down ----

# Pid from pidfile $1, only if that process still mentions $DIR in its
# command line (guards against pid reuse).
pid_from_file() {
    local f=$1 pid
    [[ -s $f ]] || return 1
    pid=$(tr -dc 0-9 <"$f")
    [[ -n $pid && -r /proc/$pid/cmdline ]] || return 1
    tr '\0' ' ' </proc/"$pid"/cmdline | grep -qF "$DIR" || return 1
    echo "$pid"
}

# TERM the given pids, wait up to ~3 s, then KILL what is left.
stop_pids() {
    local pids=("$@") p i
    (( ${#pids[@]} )) || return 0
    kill -TERM "${pids[@]}" 2>/dev/null || true
    for (( i = 0; i < 60; i++ )); do
        local alive=()
        # alive(), not kill -0: our daemons are reparented to PID 1, which
        # may take seconds to reap them, and a zombie answers kill -0.
        for p in "${pids[@]}"; do alive "$p" && alive+=("$p"); done
        (( ${#alive[@]} )) || return 0
        sleep 0.05
    done
    kill -KILL "${alive[@]}" 2>/dev/null || true
}

do_down() {
    local pids=() ns p
    # Every process living in one of the sandbox's namespaces: NM, our dnsmasq,
    # NM's own shared-mode dnsmasq, udhcpc in VMs, stray `exec` commands...
    for ns in $(sandbox_netns); do
        for p in $(ip netns pids "$ns" 2>/dev/null); do pids+=("$p"); done
    done
    # ...plus those found by pidfile, in case their netns is already gone.
    for p in "$DIR/nm.pid" "$DIR"/dnsmasq*.pid; do
        p=$(pid_from_file "$p") && pids+=("$p")
    done
    stop_pids "${pids[@]}"
    # The bus last, so NM could still say goodbye on it.
    if p=$(pid_from_file "$DIR/bus.pid"); then stop_pids "$p"; fi

    for ns in $(sandbox_netns); do
        ip netns del "$ns" 2>/dev/null || true
    done
    # Mounts live in NM's private mount namespace and die with it; this only
    # catches something leaked below $DIR by hand.
    if [[ -d $DIR ]]; then
        awk -v d="$DIR" '$5 == d || index($5, d "/") == 1 {print $5}' /proc/self/mountinfo |
            sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
    fi
    rm -rf "$DIR"
}

cmd_down() {
    [[ $# -eq 1 ]] || die "down: want exactly NAME (see --help)"
    set_names "$1"
    do_down
}

# ------------------------------------------------------------ exec & co ----

# Strip an optional leading "--" and require a command.
need_cmd() { [[ $# -ge 1 ]] || die "missing command (usage: ... NAME -- CMD...)"; }

cmd_exec() {
    [[ $# -ge 1 ]] || die "exec: missing NAME"
    set_names "$1"; shift
    [[ ${1:-} == -- ]] && shift
    need_cmd "$@"
    netns_exists "$NS" || die "no sandbox '$NAME' (netns $NS missing)"
    DBUS_SYSTEM_BUS_ADDRESS=$BUS_ADDR exec ip netns exec "$NS" "$@"
}

cmd_wire() {
    [[ $# -ge 1 ]] || die "wire: missing NAME"
    set_names "$1"; shift
    [[ ${1:-} == -- ]] && shift
    need_cmd "$@"
    netns_exists "$WNS" || die "no sandbox '$NAME' (netns $WNS missing)"
    exec ip netns exec "$WNS" "$@"
}

vm_ns() {
    if ! valid_name "$1" || [[ $1 == w ]]; then
        die "bad VMNAME '$1' (want 1-8 chars of [a-z0-9], not 'w')"
    fi
    echo "$NS-$1"
}

cmd_vm() {
    [[ $# -eq 3 ]] || die "vm: want NAME VMNAME IFNAME (see --help)"
    set_names "$1"
    local vns ifname=$3
    vns=$(vm_ns "$2")
    [[ $ifname =~ ^[A-Za-z0-9_.-]{1,15}$ ]] || die "bad IFNAME '$ifname' (1-15 chars)"
    netns_exists "$NS" || die "no sandbox '$NAME' (netns $NS missing)"
    netns_exists "$vns" && die "VM netns $vns exists already"
    ip netns add "$vns"
    # Undo the half-made VM if a later step fails (e.g. IFNAME taken).
    if ! { ip -n "$vns" link set lo up &&
           ip -n "$NS" link add "$ifname" type veth peer name vmeth0 netns "$vns" &&
           ip -n "$NS" link set "$ifname" up &&
           ip -n "$vns" link set vmeth0 up; }; then
        ip netns del "$vns" 2>/dev/null || true
        die "vm: could not create $ifname <-> $vns/vmeth0"
    fi
}

cmd_vm_exec() {
    [[ $# -ge 2 ]] || die "vm-exec: want NAME VMNAME -- CMD..."
    set_names "$1"
    local vns
    vns=$(vm_ns "$2"); shift 2
    [[ ${1:-} == -- ]] && shift
    need_cmd "$@"
    netns_exists "$vns" || die "no VM netns $vns"
    exec ip netns exec "$vns" "$@"
}

# ----------------------------------------------------------------- main ----

main() {
    local cmd=${1:-}
    [[ $# -gt 0 ]] && shift
    case $cmd in
        up)       cmd_up "$@" ;;
        down)     cmd_down "$@" ;;
        exec)     cmd_exec "$@" ;;
        wire)     cmd_wire "$@" ;;
        vm)       cmd_vm "$@" ;;
        vm-exec)  cmd_vm_exec "$@" ;;
        -h|--help|help) usage ;;
        "") usage >&2; exit 2 ;;
        *) echo "$PROG: unknown command '$cmd'" >&2; usage >&2; exit 2 ;;
    esac
}

main "$@"
