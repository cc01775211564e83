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
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
POLKIT_TEMPLATE=$SCRIPT_DIR/polkit/nmiface_polkit.py
POLKIT_PYTHON=/usr/bin/python3   # Debian's, which has python3-dbusmock (not a pyenv one)
USER_A=nmia                      # the unprivileged users of --users
USER_B=nmib
WIRE_ADDR=192.168.77.1/24
DHCP_RANGE=192.168.77.50,192.168.77.60,1h

usage() {
    cat <<EOF
Usage:
  $PROG up NAME [--nics N] [--dhcp] [--mac IF=MAC]...
                [--users [--auth-polkit true|false]]
                                        start sandbox NAME; prints env lines
  $PROG down NAME                       stop and remove sandbox NAME (idempotent)
  $PROG exec NAME -- CMD...             run CMD in NM's netns, bus env set
  $PROG wire NAME -- CMD...             run CMD in the wire (LAN) netns
  $PROG vm NAME VMNAME IFNAME           add "VM" netns nmi-NAME-VMNAME holding
                                        vmeth0; its peer IFNAME is in NM's netns
  $PROG vm-exec NAME VMNAME -- CMD...   run CMD in that VM netns
 With --users only:
  $PROG polkit NAME UID ACTION ANSWER   polkit's answer for UID (number, user
                                        name or *) and ACTION (fnmatch pattern):
                                        yes, no or auth, optionally @SECONDS
                                        (answered that much later); replaces
                                        that rule
  $PROG login NAME USER                 log USER in (a logind user record)
  $PROG logout NAME USER                log USER out
  $PROG session-bus NAME USER SERVICEDIR
                                        start USER's session bus; prints env lines
  $PROG as NAME USER -- CMD...          run CMD as USER in NM's netns with the
                                        system bus, XDG_RUNTIME_DIR and the
                                        session bus (if started) set
  $PROG restart NAME                    stop NetworkManager (TERM) and start it
                                        again, same profiles; log users in again

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

--users makes the sandbox fit for unprivileged callers, all real parts:
- users $USER_A and $USER_B exist (system users, no home, nologin; created once,
  never deleted); 'up' also prints NMIFACE_USER_A=$USER_A, NMIFACE_UID_A=UID,
  NMIFACE_USER_B=$USER_B, NMIFACE_UID_B=UID;
- NM runs with auth-polkit=true (--auth-polkit false: false);
- the bus is shaped like Debian's system bus (default deny, NM's own policy
  file /usr/share/dbus-1/system.d/org.freedesktop.NetworkManager.conf), and
  DIR is 0711 so the users reach DIR/bus.sock but cannot list or write DIR;
- a polkit stand-in (python-dbusmock, integration/polkit/nmiface_polkit.py)
  answers NM from DIR/polkit.rules (lines "UID ACTION yes|no|auth", first
  match wins, default no; re-read on every call; auth = challenge, or yes when
  the caller allows interaction) and appends "UID ACTION FLAGS ANSWER" to
  DIR/polkit.log for every question; root is always yes;
- NM's private /run has /run/systemd/{seats,sessions,users,machines}, so NM's
  session monitor runs: 'login' writes /run/systemd/users/UID there as
  logind does (ONLINE_SESSIONS is what NM reads), 'logout' removes it;
- as on a stock Debian host, users cannot read NM's dnsmasq lease files: NM's
  private /var/lib/NetworkManager is root's, mode 0700 (every sandbox, with
  or without --users), and 'as' and 'session-bus' run outside NM's mount
  namespace; where VMs are, a user learns from the kernel's neighbour table.
'session-bus' runs dbus-daemon --session as USER (in NM's netns) on
DIR/run-UID/bus, DIR/run-UID being USER's 0700 XDG_RUNTIME_DIR, with
<servicedir>SERVICEDIR</servicedir>; activated services inherit
DBUS_SYSTEM_BUS_ADDRESS and XDG_RUNTIME_DIR. Only USER can connect to it (not
even root). It prints DBUS_SESSION_BUS_ADDRESS=unix:path=DIR/run-UID/bus and
XDG_RUNTIME_DIR=DIR/run-UID.

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
    # --users: traversable (the users must reach bus.sock and their run-UID
    # dirs), neither listable nor writable by them.
    if (( USERS )); then chmod 0711 "$DIR"; else chmod 0700 "$DIR"; fi
}

# --users: the unprivileged users. useradd takes a lock on /etc/passwd, so
# sandboxes starting side by side may fail it: retry until the user exists.
ensure_users() {
    local u i
    for u in "$USER_A" "$USER_B"; do
        for (( i = 0; i < 50; i++ )); do
            id -u "$u" >/dev/null 2>&1 && break
            useradd --system --no-create-home --shell /usr/sbin/nologin "$u" 2>/dev/null && break
            sleep 0.1
        done
        id -u "$u" >/dev/null 2>&1 || die "could not create user $u"
    done
}

# A private "system" bus that allows everything. dbus-daemon (1.14) denies
# every message no rule allows, in both directions: the sender needs a send
# rule and the recipient a receive rule, replies included. The two eavesdrop
# lines are the ones that matter, though not for eavesdropping:
# send_destination="*" allows sending every type (method returns and errors
# too), and a bare <allow eavesdrop="true"/> is parsed as a receive rule for
# every message. Without them a call's reply is dropped and the caller waits
# forever (found by experiment: `busctl list` hangs too, the bus driver's reply
# is dropped the same way). allow send_type="method_call" alone is not enough.
start_bus() {
    log "starting dbus-daemon on $BUS_SOCK"
    if (( USERS )); then
        write_users_bus_conf
    else
        write_open_bus_conf
    fi
    # --fork returns once the socket listens. Detach stdio, or a caller
    # doing $(nm-sandbox.sh up) would wait for the daemon to close stdout.
    dbus-daemon --config-file="$DIR/bus.conf" --fork </dev/null >/dev/null 2>>"$DIR/bus.log" ||
        die "dbus-daemon failed to start (see $DIR/bus.log)"
}

# The private system bus's config: where it listens, then the policy given as XML in $1.
write_bus_conf() {
    cat >"$DIR/bus.conf" <<EOF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=$BUS_SOCK</listen>
  <auth>EXTERNAL</auth>
  <pidfile>$DIR/bus.pid</pidfile>
$1
</busconfig>
EOF
}

write_open_bus_conf() {
    write_bus_conf "$(cat <<'EOF'
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_type="method_call"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
  </policy>
EOF
)"
}

# --users: the default policy of Debian's /usr/share/dbus-1/system.conf
# (deny owning names and method calls, allow signals, requested replies and
# receiving; anyone may talk to the bus driver), NetworkManager's own policy
# file, and a polkit whose name only root may own and anyone may call (as
# Debian's org.freedesktop.PolicyKit1.conf, with root for user polkitd).
# The policy matters: NM 1.42 asks polkit nothing for Sleep, only the bus
# keeps non-root callers from it (with the open bus, nmib put NM to sleep).
write_users_bus_conf() {
    local nm_policy=/usr/share/dbus-1/system.d/org.freedesktop.NetworkManager.conf
    [[ -r $nm_policy ]] || die "$nm_policy missing (package network-manager)"
    write_bus_conf "$(cat <<EOF
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Properties"/>
    <deny send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"
          send_member="UpdateActivationEnvironment"/>
    <deny send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Debug.Stats"/>
  </policy>
  <policy user="root">
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Monitoring"/>
  </policy>
  <include>$nm_policy</include>
  <policy user="root">
    <allow own="org.freedesktop.PolicyKit1"/>
  </policy>
  <policy context="default">
    <allow send_destination="org.freedesktop.PolicyKit1"/>
  </policy>
EOF
)"
}

# --users: the polkit stand-in, before NM (NM looks for polkit's name owner
# once at startup and then follows NameOwnerChanged). Runs as root, which
# alone may own org.freedesktop.PolicyKit1 on this bus.
start_polkit() {
    log "starting the polkit stand-in"
    "$POLKIT_PYTHON" -c 'import dbusmock' 2>/dev/null ||
        die "$POLKIT_PYTHON lacks dbusmock (apt-get install python3-dbusmock)"
    : >"$DIR/polkit.rules"
    : >"$DIR/polkit.log"
    local params
    params=$(printf '{"rules": "%s", "log": "%s"}' "$DIR/polkit.rules" "$DIR/polkit.log")
    # sh after setsid, so the pidfile holds the final pid even if setsid forked.
    DBUS_SYSTEM_BUS_ADDRESS=$BUS_ADDR setsid sh -c 'echo $$ >"$1"; shift; exec "$@"' sh \
        "$DIR/polkit.pid" "$POLKIT_PYTHON" -m dbusmock --system --template "$POLKIT_TEMPLATE" -p "$params" \
        </dev/null >/dev/null 2>>"$DIR/polkit.out" &
    local deadline=$(( ${EPOCHREALTIME/./} + 10 * 1000000 ))
    until busctl_nm call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus \
            NameHasOwner s org.freedesktop.PolicyKit1 | grep -qx 'b true'; do
        (( ${EPOCHREALTIME/./} < deadline )) || die "the polkit stand-in did not start (see $DIR/polkit.out)"
        sleep 0.05
    done
}

# --users: every user must reach the bus socket (connect needs search on every
# directory above it and write on the socket).
check_users_reach_bus() {
    local u
    for u in "$USER_A" "$USER_B"; do
        runuser -u "$u" -- test -w "$BUS_SOCK" ||
            die "user $u cannot reach $BUS_SOCK: every directory above it needs o+x"
    done
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
auth-polkit=$AUTH_POLKIT

[keyfile]
path=$DIR/conn

[logging]
level=$NM_LOG_LEVEL
EOF
}

# The script NM runs under, inside `ip netns exec NS unshare -m`.
write_nm_start_script() {
    local logind_dirs=""
    if (( USERS )); then
        # logind's records, for NM's session monitor (src/core/nm-session-monitor.c).
        # It runs only if /run/systemd/seats/ exists, and its sd_login_monitor
        # watches all four dirs (and fails if one is missing). /run is the
        # private tmpfs above, so the host's /run/systemd is never seen or touched.
        logind_dirs="# --users: an empty logind state for NM's session monitor.
mkdir -p /run/systemd/seats /run/systemd/sessions /run/systemd/users /run/systemd/machines"
    fi
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
# Root's and 0700, as Debian's network-manager package makes it: no user reads
# the dnsmasq lease files, as on a real host.
mount -t tmpfs -o mode=0700 tmpfs /var/lib/NetworkManager
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
$logind_dirs
echo \$\$ >"$DIR/nm.pid"
exec "$NM_BIN" --no-daemon --debug --config="$DIR/NM.conf" \\
    --config-dir="$DIR/conf.d" --system-config-dir="$DIR/conf.d"
EOF
}

start_nm() {
    log "starting $NM_BIN in $NS"
    write_nm_conf
    write_nm_start_script
    launch_nm
}

launch_nm() {
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
    if (( USERS )); then
        lines+="
NMIFACE_USER_A=$USER_A
NMIFACE_UID_A=$(id -u "$USER_A")
NMIFACE_USER_B=$USER_B
NMIFACE_UID_B=$(id -u "$USER_B")"
    fi
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
    NICS=4 DHCP=0 MACS=() USERS=0 AUTH_POLKIT=false
    local auth_polkit=
    while (( $# )); do
        case $1 in
            --mac) [[ ${2:-} =~ ^eth[0-9]+=([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$ ]] || die "--mac wants ethN=MAC"
                   MACS+=("$2"); shift 2 ;;
            --nics) [[ ${2:-} =~ ^[0-9]+$ ]] || die "--nics wants a number"
                    NICS=$2; shift 2 ;;
            --dhcp) DHCP=1; shift ;;
            --users) USERS=1; shift ;;
            --auth-polkit) [[ ${2:-} =~ ^(true|false)$ ]] || die "--auth-polkit wants true or false"
                           auth_polkit=$2; shift 2 ;;
            *) die "up: unknown option '$1'" ;;
        esac
    done
    if [[ -n $auth_polkit ]]; then
        (( USERS )) || die "--auth-polkit needs --users"
        AUTH_POLKIT=$auth_polkit
    elif (( USERS )); then
        AUTH_POLKIT=true
    fi
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
    (( USERS )) && ensure_users
    make_state_dir
    start_bus
    if (( USERS )); then
        check_users_reach_bus
        start_polkit
    fi
    make_netns
    make_nics
    (( DHCP )) && start_dnsmasq
    start_nm
    wait_nm_ready
    trap - EXIT INT TERM HUP
    print_env
}

# -------------------------------------------------------------- restart ----

# `restart NAME`: NetworkManager stops (TERM, as systemd stops it) and starts
# again with the same configuration, profiles and NICs; returns once it is
# ready. Its mount namespace is new, so login records are gone: log users in
# again.
cmd_restart() {
    [[ $# -eq 1 ]] || die "restart: want NAME"
    set_names "$1"
    [[ -d $DIR ]] || die "no sandbox '$NAME'"
    local p
    if p=$(pid_from_file "$DIR/nm.pid"); then
        stop_pids "$p"
    fi
    NICS=$(ip -n "$NS" -o link show | grep -cE '^[0-9]+: eth[0-9]+@') || NICS=0
    launch_nm
    wait_nm_ready
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
    for p in "$DIR/nm.pid" "$DIR"/dnsmasq*.pid "$DIR"/run-*/bus.pid; do
        p=$(pid_from_file "$p") && pids+=("$p")
    done
    stop_pids "${pids[@]}"
    # polkit after NM (NM may still ask it), the bus last, so NM could still
    # say goodbye on it.
    if p=$(pid_from_file "$DIR/polkit.pid"); then stop_pids "$p"; fi
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

# ---------------------------------------------------------------- users ----

# Commands for a sandbox started with --users.
need_users_sandbox() {
    netns_exists "$NS" || die "no sandbox '$NAME' (netns $NS missing)"
    [[ -e $DIR/polkit.rules ]] || die "sandbox '$NAME' was not started with --users"
}

# The uid of user $1 (a name or a uid).
uid_of() {
    local uid
    # Not an option: `id -u --` would answer with the caller's (root's) uid.
    [[ -n $1 && $1 != -* ]] || die "no such user '$1'"
    uid=$(id -u "$1" 2>/dev/null) || die "no such user '$1'"
    echo "$uid"
}

# `polkit NAME UID ACTION ANSWER`: puts "UID ACTION ANSWER" first in the
# rules, dropping an older rule for the same UID and ACTION. Rename, so the
# stand-in never reads half a file. Then polkit's Changed signal, as the real
# polkitd sends when its rules change (NM then emits CheckPermissions).
cmd_polkit() {
    [[ $# -eq 4 ]] || die "polkit: want NAME UID ACTION ANSWER (see --help)"
    set_names "$1"
    local who=$2 action=$3 answer=$4
    need_users_sandbox
    [[ $who == '*' || $who =~ ^[0-9]+$ ]] || who=$(uid_of "$who")
    [[ $action =~ ^[A-Za-z0-9._*?-]+$ ]] || die "polkit: bad ACTION '$action'"
    [[ $answer =~ ^(yes|no|auth)(@[0-9]+(\.[0-9]+)?)?$ ]] ||
        die "polkit: ANSWER must be yes, no or auth, optionally @SECONDS (answered that much later)"
    local tmp=$DIR/polkit.rules.tmp.$$
    {
        echo "$who $action $answer"
        awk -v w="$who" -v a="$action" '!($1 == w && $2 == a)' "$DIR/polkit.rules"
    } >"$tmp"
    mv -f "$tmp" "$DIR/polkit.rules"
    busctl --address="$BUS_ADDR" call org.freedesktop.PolicyKit1 /org/freedesktop/PolicyKit1/Authority \
        org.freedesktop.DBus.Mock EmitSignal sssav org.freedesktop.PolicyKit1.Authority Changed "" 0 \
        >/dev/null || die "polkit: the stand-in did not answer"
}

nm_pid_or_die() {
    local p
    p=$(pid_from_file "$DIR/nm.pid") || die "NetworkManager of sandbox '$NAME' is not running"
    echo "$p"
}

# `login NAME USER`: /run/systemd/users/UID in NM's mount namespace, with the
# keys systemd-logind writes there (src/login/logind-user.c user_save). NM
# reads only ONLINE_SESSIONS: nm_session_monitor_session_exists(uid, FALSE)
# calls libsystemd's sd_uid_get_sessions(uid, 0, NULL), which parses that key
# and counts its words (ACTIVE_SESSIONS for require_active > 0). NM's
# sd_login_monitor wakes on IN_MOVED_TO and IN_DELETE in that directory, so
# the file is written aside and renamed in, as logind does. One session,
# "nmi<UID>", active, on no seat.
cmd_login() {
    [[ $# -eq 2 ]] || die "login: want NAME USER (see --help)"
    set_names "$1"
    need_users_sandbox
    local uid user pid sid
    uid=$(uid_of "$2"); user=$(id -un "$uid"); pid=$(nm_pid_or_die); sid=nmi$uid
    nsenter -t "$pid" -m -- sh -c 'set -e
        f=/run/systemd/users/$1; t=/run/systemd/users/.#$1.tmp
        printf "%s\n" "# This is private data. Do not parse." "NAME=$2" "STATE=active" \
            "STOPPING=no" "RUNTIME=$4" "REALTIME=$5" "MONOTONIC=0" "SESSIONS=$3" \
            "SEATS=" "ACTIVE_SESSIONS=$3" "ONLINE_SESSIONS=$3" "ACTIVE_SEATS=" \
            "ONLINE_SEATS=" >"$t"
        mv -f "$t" "$f"' sh "$uid" "$user" "$sid" "$DIR/run-$uid" "$(date +%s%6N)" ||
        die "login: could not write the user record"
}

# `logout NAME USER`: removes the record (IN_DELETE); NM re-checks every
# private profile's visibility and tears down what only USER could see.
# Seen with NM 1.42.4 here: a private profile with autoconnect stays down
# while its user is logged out and comes up at login; logout takes down what
# the user activated while logged in. But NM does not refuse a manual
# activation of a private profile while its user is logged out; that
# activation stays up until the user has logged in and out again, as
# NMKeepAlive drops an activation only when its profile *was* visible and no
# longer is.
cmd_logout() {
    [[ $# -eq 2 ]] || die "logout: want NAME USER (see --help)"
    set_names "$1"
    need_users_sandbox
    local uid pid
    uid=$(uid_of "$2"); pid=$(nm_pid_or_die)
    nsenter -t "$pid" -m -- rm -f "/run/systemd/users/$uid" || die "logout: could not remove the user record"
}

# DIR/run-UID: USER's XDG_RUNTIME_DIR, owned by USER, 0700.
ensure_runtime_dir() {
    local user=$1 uid=$2 rdir=$DIR/run-$2
    if [[ ! -d $rdir ]]; then
        install -d -m 0700 -o "$user" -g "$(id -g "$user")" "$rdir"
    fi
    echo "$rdir"
}

# `session-bus NAME USER SERVICEDIR`: USER's session bus, run as USER in NM's
# netns (so D-Bus-activated services see NM's devices) but outside its mount
# namespace, like every user process on a real host (see `as`). The policy is that of
# /usr/share/dbus-1/session.conf: everything allowed among those who may
# connect, and with no <allow user> rule dbus-daemon admits only its own uid.
cmd_session_bus() {
    [[ $# -eq 3 ]] || die "session-bus: want NAME USER SERVICEDIR (see --help)"
    set_names "$1"
    need_users_sandbox
    local uid user servicedir=$3 rdir
    uid=$(uid_of "$2"); user=$(id -un "$uid")
    [[ $servicedir == /* && -d $servicedir ]] || die "session-bus: SERVICEDIR must be an existing absolute dir"
    [[ $servicedir =~ ^[A-Za-z0-9/._+-]+$ ]] || die "session-bus: SERVICEDIR must contain only [A-Za-z0-9/._+-]"
    rdir=$(ensure_runtime_dir "$user" "$uid")
    [[ -e $rdir/bus ]] && die "session-bus: $user's session bus runs already"
    cat >"$rdir/session.conf" <<EOF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path=$rdir/bus</listen>
  <auth>EXTERNAL</auth>
  <pidfile>$rdir/bus.pid</pidfile>
  <servicedir>$servicedir</servicedir>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
EOF
    chmod 0644 "$rdir/session.conf"
    # Activated services inherit the daemon's environment and namespaces.
    ip netns exec "$NS" runuser -u "$user" -- env -i \
        PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        USER="$user" LOGNAME="$user" HOME="$(getent passwd "$user" | cut -d: -f6)" \
        DBUS_SYSTEM_BUS_ADDRESS="$BUS_ADDR" XDG_RUNTIME_DIR="$rdir" \
        DBUS_SESSION_BUS_ADDRESS="unix:path=$rdir/bus" \
        dbus-daemon --config-file="$rdir/session.conf" --fork \
        </dev/null >/dev/null 2>>"$DIR/session-$uid.log" ||
        die "session-bus: dbus-daemon failed (see $DIR/session-$uid.log)"
    echo "DBUS_SESSION_BUS_ADDRESS=unix:path=$rdir/bus"
    echo "XDG_RUNTIME_DIR=$rdir"
}

# `as NAME USER -- CMD...`: CMD as USER in NM's netns, with the sandbox's
# system bus, USER's runtime dir and session bus (if started). CMD sees the
# host's file systems (ip netns exec), where /var/lib/NetworkManager is the
# host's, and NM's is not to be seen: NM's own /run and /var/lib/NetworkManager
# are tmpfs mounts in NM's private mount namespace (the latter root's, 0700,
# as on Debian), and /proc/NMPID/root is closed to other users. No user enters
# NM's mount namespace: a user reads where VMs are from the kernel's
# neighbour table, as on a real host.
cmd_as() {
    [[ $# -ge 2 ]] || die "as: want NAME USER -- CMD..."
    set_names "$1"
    local uid user rdir
    need_users_sandbox
    uid=$(uid_of "$2"); user=$(id -un "$uid"); shift 2
    [[ ${1:-} == -- ]] && shift
    need_cmd "$@"
    rdir=$(ensure_runtime_dir "$user" "$uid")
    local env=(DBUS_SYSTEM_BUS_ADDRESS="$BUS_ADDR" XDG_RUNTIME_DIR="$rdir")
    if [[ -S $rdir/bus ]]; then env+=(DBUS_SESSION_BUS_ADDRESS="unix:path=$rdir/bus"); fi
    exec ip netns exec "$NS" runuser -u "$user" -- env "${env[@]}" "$@"
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
        polkit)   cmd_polkit "$@" ;;
        login)    cmd_login "$@" ;;
        logout)   cmd_logout "$@" ;;
        session-bus) cmd_session_bus "$@" ;;
        as)       cmd_as "$@" ;;
        restart)  cmd_restart "$@" ;;
        -h|--help|help) usage ;;
        "") usage >&2; exit 2 ;;
        *) echo "$PROG: unknown command '$cmd'" >&2; usage >&2; exit 2 ;;
    esac
}

main "$@"
