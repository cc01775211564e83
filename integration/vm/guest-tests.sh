#!/usr/bin/env bash
# nmiface against a real NetworkManager and a real kernel with bonding, 802.1q and bridge, and a
# laptop's Wi-Fi (two mac80211_hwsim radios: a "café" access point and the laptop's station).
#
# Runs inside the qemu guest of integration/vm/run.sh, as root (the guest's /init starts it), with
#   NMIFACE  the nmiface binary (default: nmiface on PATH)
#   SAMPLES  the project's xml-samples/ (documents that exist there are read from there)
#   WORK     a writable directory (default: a new one under /tmp)
# The guest has at least 3 virtio NICs, found with `ip -j -d link` (NIC1, NIC2: bond ports;
# NIC3: VLAN parent and the spare); the t_wifi_* tests run last and need hostapd, wpa_supplicant
# (started before NetworkManager), dnsmasq, nft and iw. Each test is a function t_*; a failed
# check prints the command, its exit status and its whole output, and ends that test. The last
# line is "N passed, M failed".
# Exit status: 0 when nothing failed, 1 otherwise.
set -uo pipefail

NMIFACE=${NMIFACE:-nmiface}
WORK=${WORK:-$(mktemp -d)}
cd "$WORK" || exit 1

# ---- helpers -----------------------------------------------------------------------------------

# indent TEXT: TEXT, each line behind "  | ".
indent() { printf '%s\n' "$1" | sed 's/^/  | /'; }

# fail MSG...: print a loud failure and fail the current test.
fail() {
    echo "  FAIL: $*"
    return 1
}

# run WANT CMD...: run CMD; its exit status must be one of WANT (comma-separated). The output is
# kept in $OUT (stdout and stderr together) and shown whole when the status is wrong.
OUT=
run() {
    local want=$1 rc=0
    shift
    OUT=$("$@" 2>&1) || rc=$?
    echo "  \$ $* -> $rc"
    if [[ ,$want, != *",$rc,"* ]]; then
        indent "$OUT"
        fail "'$*' exited $rc, expected $want"
        return 1
    fi
}

nmi() { run 0 "$NMIFACE" "$@"; }

# poll SECONDS CMD...: retry CMD (quietly) every 0.2 s until it succeeds or SECONDS pass.
poll() {
    local end=$((SECONDS + $1))
    shift
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < end)) || return 1
        sleep 0.2
    done
}

# ms_since EPOCHREALTIME: milliseconds since then.
ms_since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%d", (b - a) * 1000 }'; }

# show TITLE CMD...: print CMD's output indented (context for a failure).
show() {
    local title=$1
    shift
    echo "  -- $title:"
    "$@" 2>&1 | sed 's/^/  | /'
}

known_issue() { echo "  KNOWN ISSUE (not counted): $*"; }

# sample FILE [NAME=GUESTNAME...]: xml-samples/FILE copied to the work directory as FILE, with the
# sample's NIC names (eth0-eth3, quoted attribute values) replaced by the guest's, all at once.
sample() {
    local f=$SAMPLES/$1 sub i=0 to=() expr=()
    shift
    [[ -f $f ]] || { fail "no sample $f"; return 1; }
    for sub; do
        expr+=(-e "s/\(['\"]\)${sub%%=*}\(['\"]\)/\1@@$i@@\2/g")
        to+=(-e "s/@@$i@@/${sub#*=}/g")
        i=$((i + 1))
    done
    sed "${expr[@]}" "${to[@]}" "$f" >"${f##*/}"
}

# profiles FILE: "UUID ID" of every profile nmiface makes of FILE.
profiles() { "$NMIFACE" translate "$1" 2>/dev/null | jq -r '.documents[].interfaces[].profiles[] | "\(.uuid) \(.id)"'; }

# expect_profiles_active FILE: every profile of FILE exists in NM and is activated.
expect_profiles_active() {
    local uuid id state
    while read -r uuid id; do
        state=$(nmcli -g GENERAL.STATE con show "$uuid" 2>&1) || {
            show "nmcli con" nmcli -t con show
            fail "profile $id ($uuid) of $1 is not in NetworkManager: $state"
            return 1
        }
        [[ $state == activated ]] || {
            show "nmcli dev" nmcli dev
            fail "profile $id ($uuid) of $1 is '$state', not activated"
            return 1
        }
    done < <(profiles "$1")
    [[ -n $(profiles "$1") ]] || fail "nmiface translate $1 gave no profiles"
}

# expect_profiles_gone FILE: no profile of FILE is left in NM, by UUID or by name.
expect_profiles_gone() {
    local uuid id left
    left=$(nmcli -t -f UUID,NAME con show)
    while read -r uuid id; do
        if grep -qE "^$uuid:|:$id\$" <<<"$left"; then
            show "nmcli -t con show" echo "$left"
            fail "profile $id ($uuid) of $1 is still there"
            return 1
        fi
    done < <(profiles "$1")
}

# expect_link_gone NAME: the kernel device goes away (NM deletes software devices it made).
expect_link_gone() {
    poll 10 bash -c "! ip link show dev '$1'" || {
        show "ip -br link" ip -br link
        fail "link $1 still exists 10 s after undefine"
        return 1
    }
}

# expect_same_xml NAME FILE: dumpxml --inactive NAME is translate --to-xml FILE (canonical XML).
# WANT_TRANSLATE: the exit status translate --to-xml may have (1 when the doc expects a finding).
expect_same_xml() {
    nmi dumpxml --inactive "$1" || return 1
    local dumped=$OUT
    run "${WANT_TRANSLATE:-0}" "$NMIFACE" translate --to-xml "$2" || return 1
    local canonical
    canonical=$("$NMIFACE" translate --to-xml "$2" 2>/dev/null)
    if [[ $dumped != "$canonical" ]]; then
        diff -u <(echo "$canonical") <(echo "$dumped") | sed 's/^/  | /'
        fail "dumpxml --inactive $1 differs from translate --to-xml $2 (diff: canonical -> dumped)"
        return 1
    fi
}

bonding() { cat "/proc/net/bonding/$1"; }

# expect_bond NAME MODE [MIIMON [PRIMARY]]: /proc/net/bonding/NAME says so.
expect_bond() {
    local name=$1 mode=$2 mii=${3:-} primary=${4:-} text
    text=$(bonding "$name" 2>&1) || { fail "no /proc/net/bonding/$name: $text"; return 1; }
    local ok=1
    grep -q "^Bonding Mode: .*$mode" <<<"$text" || { echo "  FAIL: mode is not $mode"; ok=0; }
    if [[ -n $mii ]]; then
        grep -qx "MII Polling Interval (ms): $mii" <<<"$text" || { echo "  FAIL: MII polling interval is not $mii"; ok=0; }
    fi
    if [[ -n $primary ]]; then
        grep -q "^Primary Slave: $primary\( \|$\)" <<<"$text" || { echo "  FAIL: primary is not $primary"; ok=0; }
    fi
    if ((!ok)); then
        show "/proc/net/bonding/$name" echo "$text"
        return 1
    fi
    echo "  ok: $name: $(grep '^Bonding Mode' <<<"$text")${mii:+, miimon $mii}${primary:+, primary $primary}"
}

active_port() { bonding "$1" | sed -n 's/^Currently Active Slave: //p'; }
# active_is BOND PORT: PORT is BOND's active port now (a command for poll: evaluated each try).
active_is() { [[ $(active_port "$1") == "$2" ]]; }

# expect_failover BOND FROM TO: FROM is active; taking FROM down makes TO active; FROM back up.
expect_failover() {
    local bond=$1 from=$2 to=$3
    poll 5 active_is "$bond" "$from" ||
        { show "/proc/net/bonding/$bond" bonding "$bond"; fail "$from is not the active port of $bond"; return 1; }
    local t0=$EPOCHREALTIME
    run 0 ip link set "$from" down || return 1
    if ! poll 5 active_is "$bond" "$to"; then
        show "/proc/net/bonding/$bond" bonding "$bond"
        ip link set "$from" up
        fail "$bond did not fail over from $from to $to within 5 s"
        return 1
    fi
    echo "  ok: $bond failed over: $from down, active port now $to ($(ms_since "$t0") ms)"
    t0=$EPOCHREALTIME
    run 0 ip link set "$from" up || return 1
    # With a primary (primary_reselect always) the bond goes back to it once it is up again.
    if ! poll 10 active_is "$bond" "$from"; then
        show "/proc/net/bonding/$bond" bonding "$bond"
        fail "$bond did not return to its primary $from within 10 s of it coming back"
        return 1
    fi
    echo "  ok: $from up again, active again ($(ms_since "$t0") ms)"
}

# vlan_info NAME: "PROTOCOL ID FLAGS" of a VLAN device, from ip -d -j link.
vlan_info() {
    ip -d -j link show dev "$1" |
        jq -r '.[0] | .linkinfo | select(.info_kind == "vlan") | .info_data |
               "\(.protocol) \(.id) \((.flags // []) | join(","))"'
}

# expect_vlan NAME PARENT ID yes|no(REORDER_HDR)
expect_vlan() {
    local name=$1 parent=$2 id=$3 reorder=$4 info link
    info=$(vlan_info "$name")
    link=$(ip -j link show dev "$name" | jq -r '.[0].link // empty')
    local proto got_id flags
    read -r proto got_id flags <<<"$info"
    if [[ $proto != 802.1Q || $got_id != "$id" || $link != "$parent" ]] ||
        { [[ $reorder == yes ]] && [[ ,${flags:-}, != *,REORDER_HDR,* ]]; } ||
        { [[ $reorder == no ]] && [[ ,${flags:-}, == *,REORDER_HDR,* ]]; }; then
        show "ip -d link show $name" ip -d link show dev "$name"
        fail "$name: want 802.1Q id $id on $parent with REORDER_HDR $reorder; got '$info' on '$link'"
        return 1
    fi
    echo "  ok: $name: vlan protocol $proto id $got_id on $link, flags <${flags:-}>"
}

# expect_listed NAME...: nmiface list --all --json has each NAME as nmiface's own, active (the
# list also shows NetworkManager's other profiles, such as a stock profile of the same NIC).
expect_listed() {
    nmi list --all --json || return 1
    local name json=$OUT
    for name in "$@"; do
        if [[ $(jq -r --arg n "$name" '.[] | select(.name == $n and .nmiface) | .active' <<<"$json") != true ]]; then
            indent "$json"
            run 0 "$NMIFACE" list --all
            indent "$OUT"
            fail "nmiface list --all does not show $name as active"
            return 1
        fi
    done
    echo "  ok: nmiface list --all shows $* active"
}

# undefine NAME FILE: nmiface undefine NAME; then none of FILE's profiles, nor the device, is left.
undefine() {
    nmi undefine "$1" || return 1
    expect_profiles_gone "$2" || return 1
    expect_link_gone "$1"
}

# ---- the guest's NICs --------------------------------------------------------------------------
mapfile -t NICS < <(ip -j -d link | jq -r 'sort_by(.ifindex) | .[] |
    select(.link_type == "ether" and (.linkinfo.info_kind // "") == "") | .ifname')
echo "NICs: ${NICS[*]}"
if ((${#NICS[@]} < 3)); then
    echo "need at least 3 ethernet NICs, have ${#NICS[@]}"
    ip -br link
    echo "0 passed, 1 failed"
    exit 1
fi
NIC1=${NICS[0]} NIC2=${NICS[1]} NIC3=${NICS[2]}
echo "NetworkManager $(NetworkManager --version), kernel $(uname -r), $("$NMIFACE" --version)"

# ---- tests -------------------------------------------------------------------------------------

# A stock NetworkManager makes an in-memory "Wired connection N" profile (interface-name set) for
# each NIC. It only shares the device with nmiface's profile, which NetworkManager allows (one
# active at a time): apply works without --adopt, activates nmiface's profile, and leaves the
# default profile as it was; undefine deletes only nmiface's. Afterwards the remaining default
# profiles of the NICs are deleted, as an administrator would.
t_stock_default_profile() {
    sample libvirt-ethernet-dhcp-onboot.xml eth0="$NIC3" || return 1
    local uuid before after active
    uuid=$(nmcli -t -f DEVICE,UUID con show | awk -F: -v d="$NIC3" '$1 == d { print $2 }')
    if [[ -z $uuid ]]; then
        show "nmcli -t con show" nmcli -t con show
        fail "no default profile on $NIC3 (NetworkManager's no-auto-default set?)"
        return 1
    fi
    before=$(profile_config "$uuid")
    # Exit 1 with a finding that names the stock profile: both come up by themselves, and at
    # boot NetworkManager brings up one of them (issue "never lose what the user had").
    run 1 "$NMIFACE" apply libvirt-ethernet-dhcp-onboot.xml || return 1
    local stock
    stock=$(nmcli -g connection.id con show "$uuid")
    if [[ $OUT != *"'$stock'"*"--adopt"* ]]; then
        indent "$OUT"
        fail "apply beside the stock profile did not name '$stock' and --adopt"
        return 1
    fi
    active=$(nmcli -t -f NAME,DEVICE con show --active | awk -F: -v d="$NIC3" '$2 == d { print $1 }')
    if [[ $active != "$NIC3" ]]; then
        show "nmcli -t con show --active" nmcli -t con show --active
        fail "nmiface's profile is not the active one on $NIC3"
        return 1
    fi
    after=$(profile_config "$uuid")
    if [[ $before != "$after" ]]; then
        diff <(echo "$before") <(echo "$after") | indent
        fail "the default profile $uuid changed"
        return 1
    fi
    echo "  ok: applied next to the default profile $uuid, which is unchanged"
    expect_listed "$NIC3" || return 1
    nmi undefine "$NIC3" || return 1
    if nmcli -t -f NAME con show | grep -qx "$NIC3"; then
        show "nmcli -t con show" nmcli -t -f UUID,NAME,DEVICE con show
        fail "undefine $NIC3 left its profile"
        return 1
    fi
    if ! nmcli -t -f UUID con show | grep -qx "$uuid"; then
        fail "undefine deleted the default profile $uuid"
        return 1
    fi
    echo "  ok: undefine deleted nmiface's profile only"
}

# profile_config UUID: the profile's configuration, without runtime state (GENERAL, IP, DHCP
# and the last-activation timestamp).
profile_config() {
    nmcli -t con show "$1" | grep -v -e '^GENERAL\.' -e '^connection.timestamp:' -e '^IP[46]\.' -e '^DHCP[46]\.' | sort
}

# expect_one_active_profile NAME UUID: exactly one profile is called NAME; it has UUID, is active.
expect_one_active_profile() {
    local all
    all=$(nmcli -t -f NAME,UUID,DEVICE,STATE con show)
    if [[ $(grep -c "^$1:" <<<"$all") != 1 ]] || ! grep -qx "$1:$2:$1:activated" <<<"$all"; then
        show "nmcli -t -f NAME,UUID,DEVICE,STATE con show" echo "$all"
        fail "want exactly one profile '$1', UUID $2, activated on $1"
        return 1
    fi
    echo "  ok: one profile '$1' ($2), activated"
}

remove_default_profiles() {
    local uuid type dev
    while IFS=: read -r uuid type dev; do
        [[ $type == 802-3-ethernet ]] || continue
        case " ${NICS[*]} " in *" $dev "*) ;; *) [[ -z $dev ]] || continue ;; esac
        nmcli con delete "$uuid" >/dev/null 2>&1 && echo "(setup: deleted NetworkManager's default profile $uuid on ${dev:-no device})"
    done < <(nmcli -t -f UUID,TYPE,DEVICE con show)
}

# Bond in libvirt's format: active-backup, miimon 100, static IPv4; the first port is the primary.
t_bond_libvirt() {
    cat >bond0.xml <<EOF
<interface type='bond' name='bond0'>
  <start mode='onboot'/>
  <protocol family='ipv4'>
    <ip address='192.0.2.10' prefix='24'/>
  </protocol>
  <bond mode='active-backup'>
    <miimon freq='100'/>
    <interface type='ethernet' name='$NIC1'/>
    <interface type='ethernet' name='$NIC2'/>
  </bond>
</interface>
EOF
    nmi apply bond0.xml || return 1
    expect_profiles_active bond0.xml || return 1
    expect_bond bond0 active-backup 100 "$NIC1" || return 1
    local addrs
    addrs=$(ip -j addr show dev bond0 | jq -r '.[0].addr_info[] | select(.family == "inet") | "\(.local)/\(.prefixlen)"')
    [[ $addrs == 192.0.2.10/24 ]] || { show "ip addr show bond0" ip addr show dev bond0; fail "bond0 has IPv4 '$addrs', not 192.0.2.10/24"; return 1; }
    echo "  ok: bond0 has 192.0.2.10/24"
    local port
    for port in "$NIC1" "$NIC2"; do
        [[ $(ip -j link show dev "$port" | jq -r '.[0].master // empty') == bond0 ]] ||
            { show "ip link show $port" ip link show dev "$port"; fail "$port is not enslaved to bond0"; return 1; }
    done
    expect_same_xml bond0 bond0.xml || return 1
    expect_failover bond0 "$NIC1" "$NIC2"
}

# A VLAN on the bond (bond0 stays from t_bond_libvirt).
t_vlan_on_bond() {
    [[ -d /sys/class/net/bond0 ]] || { fail "bond0 is not there (t_bond_libvirt failed?)"; return 1; }
    cat >bond0.200.xml <<EOF
<interface type='vlan' name='bond0.200'>
  <start mode='onboot'/>
  <vlan tag='200'>
    <interface name='bond0'/>
  </vlan>
</interface>
EOF
    nmi apply bond0.200.xml || return 1
    expect_profiles_active bond0.200.xml || return 1
    expect_vlan bond0.200 bond0 200 yes || return 1
    expect_same_xml bond0.200 bond0.200.xml
}

# A VLAN on an ethernet NIC, libvirt's format: REORDER_HDR on.
t_vlan_libvirt() {
    cat >vlan100.xml <<EOF
<interface type='vlan' name='$NIC3.100'>
  <start mode='onboot'/>
  <vlan tag='100'>
    <interface name='$NIC3'/>
  </vlan>
</interface>
EOF
    nmi apply vlan100.xml || return 1
    expect_profiles_active vlan100.xml || return 1
    expect_vlan "$NIC3.100" "$NIC3" 100 yes || return 1
    expect_same_xml "$NIC3.100" vlan100.xml
}

# A VLAN in the 2009 draft's format with reorder_hdr="no": REORDER_HDR off in the kernel.
t_vlan_draft_reorder_hdr_no() {
    echo "<vlan device=\"$NIC3\" tag=\"101\" reorder_hdr=\"no\"/>" >vlan101.xml
    nmi apply vlan101.xml || return 1
    expect_profiles_active vlan101.xml || return 1
    expect_vlan "$NIC3.101" "$NIC3" 101 no || return 1
    # libvirt's format cannot say reorder_hdr off; nmiface's extension can, so the canonical XML
    # (and dumpxml) keeps it, and defining that XML again keeps the flag off.
    run 0 "$NMIFACE" translate --to-xml vlan101.xml || return 1
    grep -q "reorder-hdr='off'" <<<"$OUT" || { indent "$OUT"; fail "the canonical XML lost reorder_hdr off"; return 1; }
    expect_same_xml "$NIC3.101" vlan101.xml || return 1
    echo "  ok: <nmi:vlan reorder-hdr='off'/> in the canonical XML and in dumpxml"
}

t_list_all() {
    expect_listed bond0 bond0.200 "$NIC3.100" "$NIC3.101"
}

t_undefine_all() {
    local ok=0
    undefine bond0.200 bond0.200.xml || ok=1
    undefine "$NIC3.100" vlan100.xml || ok=1
    undefine "$NIC3.101" vlan101.xml || ok=1
    undefine bond0 bond0.xml || ok=1
    [[ -z $(bonding_masters) ]] || { show "bonding_masters" bonding_masters; fail "bonds left in the kernel"; ok=1; }
    return $ok
}
bonding_masters() { cat /sys/class/net/bonding_masters 2>/dev/null; }

# Bond in the 2009 draft's format, the sample's primary="yes" slave on NIC2: the primary is not
# the first NIC.
t_bond_draft() {
    sample draft-bond-active-backup.xml eth0="$NIC2" eth1="$NIC1" || return 1
    nmi apply draft-bond-active-backup.xml || return 1
    expect_profiles_active draft-bond-active-backup.xml || return 1
    expect_bond bond0 active-backup "" "$NIC2" || return 1
    expect_same_xml bond0 draft-bond-active-backup.xml || return 1
    # The canonical XML says what NetworkManager will do: a bond without miimon or arpmon gets
    # NetworkManager's default MII monitoring, and the XML says so with the kernel's interval.
    local mii
    mii=$(bonding bond0 | sed -n 's/^MII Polling Interval (ms): //p')
    if ! "$NMIFACE" dumpxml --inactive bond0 | grep -q "<miimon freq='$mii'"; then
        show "dumpxml --inactive bond0" "$NMIFACE" dumpxml --inactive bond0
        fail "the kernel polls MII every $mii ms, which the canonical XML does not say"
        return 1
    fi
    echo "  ok: <miimon freq='$mii'/> in the canonical XML matches the kernel"
    expect_failover bond0 "$NIC2" "$NIC1" || return 1
    expect_listed bond0 || return 1
    undefine bond0 draft-bond-active-backup.xml
}

# 802.3ad and balance-rr bonds are accepted by the kernel.
t_bond_modes() {
    local mode
    for mode in 802.3ad balance-rr; do
        cat >"bond-$mode.xml" <<EOF
<interface type='bond' name='bond1'>
  <start mode='onboot'/>
  <bond mode='$mode'>
    <miimon freq='100'/>
    <interface type='ethernet' name='$NIC1'/>
    <interface type='ethernet' name='$NIC2'/>
  </bond>
</interface>
EOF
        nmi apply "bond-$mode.xml" || return 1
        expect_profiles_active "bond-$mode.xml" || return 1
        case $mode in
        802.3ad) expect_bond bond1 'IEEE 802.3ad Dynamic link aggregation' 100 || return 1 ;;
        balance-rr) expect_bond bond1 'load balancing (round-robin)' 100 || return 1 ;;
        esac
        expect_same_xml bond1 "bond-$mode.xml" || return 1
        undefine bond1 "bond-$mode.xml" || return 1
    done
}

# A bridge whose port is a bare bond of two NICs.
t_bridge_bond_port() {
    cat >br0.xml <<EOF
<interface type='bridge' name='br0'>
  <start mode='onboot'/>
  <protocol family='ipv4'>
    <ip address='198.51.100.2' prefix='24'/>
  </protocol>
  <bridge stp='off'>
    <interface type='bond' name='bond2'>
      <bond mode='active-backup'>
        <miimon freq='100'/>
        <interface type='ethernet' name='$NIC1'/>
        <interface type='ethernet' name='$NIC2'/>
      </bond>
    </interface>
  </bridge>
</interface>
EOF
    nmi apply br0.xml || return 1
    expect_profiles_active br0.xml || return 1
    local master
    master=$(ip -j link show dev bond2 | jq -r '.[0].master // empty')
    [[ $master == br0 ]] || { show "ip link" ip -br link; fail "bond2's master is '$master', not br0"; return 1; }
    echo "  ok: bond2's master is br0"
    [[ $(ip -j link show dev "$NIC1" | jq -r '.[0].master // empty') == bond2 ]] ||
        { show "ip link" ip -br link; fail "$NIC1 is not a port of bond2"; return 1; }
    expect_bond bond2 active-backup 100 "$NIC1" || return 1
    [[ $(cat /sys/class/net/br0/bridge/stp_state) == 0 ]] || { fail "br0 has STP on"; return 1; }
    expect_same_xml br0 br0.xml || return 1
    expect_listed br0 || return 1
    undefine br0 br0.xml || return 1
    expect_link_gone bond2
}

# nmiface check on Debian's kernel: bonding and 8021q are available, so a bond and a VLAN have no
# kernel gap here (on the CI host's kernel they do: tests/nm checks that side).
t_check() {
    cat >check.xml <<EOF
<interfaces>
  <interface type='bond' name='bond9'>
    <bond mode='active-backup'>
      <miimon freq='100'/>
      <interface type='ethernet' name='$NIC1'/>
      <interface type='ethernet' name='$NIC2'/>
    </bond>
  </interface>
  <interface type='vlan' name='$NIC3.77'>
    <vlan tag='77'>
      <interface name='$NIC3'/>
    </vlan>
  </interface>
</interfaces>
EOF
    nmi check check.xml || return 1
    run 0 "$NMIFACE" check --json check.xml || return 1
    local m state
    for m in bonding vlan; do
        state=$(jq -r ".kernel.$m" <<<"$OUT")
        if [[ $state == missing || $state == null ]]; then
            indent "$OUT"
            fail "check reports kernel $m as '$state' on Debian's kernel"
            return 1
        fi
        echo "  ok: kernel $m: $state"
    done
    if [[ $(jq '[.interfaces[].items[] | select(.by == "kernel")] | length' <<<"$OUT") != 0 ]]; then
        indent "$OUT"
        fail "check reports a kernel gap on Debian's kernel"
        return 1
    fi
    echo "  ok: no kernel gaps for bond and VLAN"
}


# ---- the laptop: a Wi-Fi uplink (mac80211_hwsim) -----------------------------------------------
# The "café": one simulated radio moved into namespace cafe runs hostapd (WPA2-PSK) with dnsmasq
# serving 192.168.50.0/24 behind it; the other radio is the laptop's Wi-Fi NIC ($WLAN), left to
# NetworkManager, which joins the café with a profile nmiface did not make ("cafe"). The "ISP": a
# veth wired0 whose peer isp0 sits in namespace isp, dnsmasq serving 192.168.60.0/24 ("isp",
# route metric 700, so the café's Wi-Fi, metric 600, is the active uplink while both are up). Both
# namespaces hold the "internet" address $INTERNET on lo: the VM reaches it over either uplink.
# The "VM": namespace vm whose veth end is a port of the NAT bridge virbr1 (busybox udhcpc).
CAFE_SSID=nmiface-cafe CAFE_PSK=espresso-doppio-42 INTERNET=203.0.113.1
WLAN= WIFI_READY=0
in_ns() { ip netns exec "$@"; }

# dhcp_server NS IF RANGE NAME: dnsmasq (DHCP only; it hands out its own address as the router).
dhcp_server() {
    in_ns "$1" dnsmasq --conf-file=/dev/null --interface="$2" --bind-interfaces --except-interface=lo \
        --port=0 --dhcp-range="$3,1h" --user=root --pid-file="$WORK/$4-dnsmasq.pid" \
        --dhcp-leasefile="$WORK/$4.leases" --log-facility="$WORK/$4-dnsmasq.log"
}

# wifi_setup: the café's access point and the laptop's Wi-Fi NIC, managed by NetworkManager.
wifi_setup() {
    run 0 modprobe mac80211_hwsim radios=2 || return 1
    poll 10 bash -c '(($(ls -d /sys/class/net/*/phy80211 | wc -l) >= 2))' ||
        { show "ip -br link" ip -br link; fail "mac80211_hwsim made no two radios"; return 1; }
    # The radios' network interfaces in phy order: the first is the laptop's, the second the AP.
    local d radios=()
    mapfile -t radios < <(for d in /sys/class/net/*/phy80211; do
        d=${d%/phy80211}; echo "$(cat "$d/phy80211/index") ${d##*/}"; done | sort -n | cut -d' ' -f2)
    WLAN=${radios[0]}
    local ap=${radios[1]} phy
    phy=$(cat "/sys/class/net/$ap/phy80211/name")
    run 0 ip netns add cafe || return 1
    run 0 iw phy "$phy" set netns name cafe || return 1
    in_ns cafe ip link set lo up
    run 0 in_ns cafe ip addr add "$INTERNET/32" dev lo || return 1
    run 0 in_ns cafe ip addr add 192.168.50.1/24 dev "$ap" || return 1
    cat >"$WORK/hostapd.conf" <<EOC
interface=$ap
driver=nl80211
ssid=$CAFE_SSID
hw_mode=g
channel=1
wpa=2
wpa_key_mgmt=WPA-PSK
rsn_pairwise=CCMP
wpa_passphrase=$CAFE_PSK
EOC
    run 0 in_ns cafe hostapd -B -P "$WORK/hostapd.pid" -f "$WORK/hostapd.log" "$WORK/hostapd.conf" || return 1
    poll 10 bash -c "ip netns exec cafe iw dev '$ap' info | grep -q 'type AP'" ||
        { show "hostapd.log" cat "$WORK/hostapd.log"; fail "hostapd did not start the access point"; return 1; }
    run 0 dhcp_server cafe "$ap" 192.168.50.100,192.168.50.150 cafe || return 1
    echo "  ok: the café: $ap in namespace cafe, hostapd ($CAFE_SSID, WPA2-PSK) and DHCP; $INTERNET behind it"
    poll 20 bash -c "nmcli -t -f DEVICE,TYPE,STATE dev | grep -q '^$WLAN:wifi:disconnected'" ||
        { show "nmcli dev" nmcli dev; fail "NetworkManager does not manage $WLAN as Wi-Fi"; return 1; }
    # NetworkManager's own profile, as a user would make it (nmcli dev wifi connect makes the same).
    run 0 nmcli con add type wifi ifname "$WLAN" con-name cafe ssid "$CAFE_SSID" \
        wifi-sec.key-mgmt wpa-psk wifi-sec.psk "$CAFE_PSK" ipv6.method disabled || return 1
    poll 30 bash -c "nmcli -t -f SSID dev wifi list ifname '$WLAN' --rescan yes | grep -qx '$CAFE_SSID'" ||
        { show "nmcli dev wifi" nmcli dev wifi list; fail "$WLAN does not see $CAFE_SSID"; return 1; }
    wifi_up || return 1
    WIFI_READY=1
}

# wifi_up: (re)join the café.
wifi_up() {
    local t0=$EPOCHREALTIME
    run 0 nmcli --wait 60 con up cafe || { show "hostapd.log" tail -20 "$WORK/hostapd.log"; return 1; }
    local addr
    addr=$(ip -j -4 addr show dev "$WLAN" | jq -r '.[0].addr_info[0].local // empty')
    [[ $addr == 192.168.50.* ]] || { show "ip addr" ip addr show dev "$WLAN"; fail "$WLAN has no café lease"; return 1; }
    echo "  ok: NetworkManager joined $CAFE_SSID on $WLAN, lease $addr ($(ms_since "$t0") ms)"
}

# need_wifi: the café is up (wifi_setup ran), for the tests after t_wifi_uplink.
need_wifi() { ((WIFI_READY)) || { fail "no Wi-Fi uplink (t_wifi_uplink failed)"; return 1; }; }

# host_state: what must not change when nmiface refuses: profiles, addresses and links (without
# address lifetimes, which count down), and the keyfiles' bytes.
host_state() {
    echo "## nmcli"
    nmcli -t -f UUID,NAME,TYPE,DEVICE con show
    echo "## ip addr"
    ip -j addr | jq -S 'map(.addr_info |= map(del(.valid_life_time, .preferred_life_time)))'
    echo "## ip link"
    ip -j link | jq -S .
    echo "## keyfiles"
    (cd /etc/NetworkManager/system-connections && find . -type f -print0 | sort -z | xargs -0r sha256sum)
}

# expect_refused_unchanged CMD...: CMD exits 2, says Wi-Fi and names the remedy (NAT sharing),
# and the host is byte-identical afterwards.
expect_refused_unchanged() {
    local before after ok=1
    before=$(host_state)
    run 2 "$@" || ok=0
    indent "$OUT"
    if ((ok)); then
        grep -q 'Wi-Fi' <<<"$OUT" || { echo "  FAIL: the refusal does not say Wi-Fi"; ok=0; }
        grep -q 'nmiface share --nat' <<<"$OUT" || { echo "  FAIL: the refusal does not name the remedy 'nmiface share --nat'"; ok=0; }
    fi
    sleep 1
    after=$(host_state)
    if [[ $before != "$after" ]]; then
        diff -u <(echo "$before") <(echo "$after") | sed 's/^/  | /'
        echo "  FAIL: the host changed (diff: before -> after)"
        ok=0
    else
        echo "  ok: the host is unchanged (profiles, ip addr, ip link, keyfiles)"
    fi
    ((ok)) || return 1
    echo "  ok: refused with exit 2, naming Wi-Fi and nmiface share --nat"
}

# NetworkManager joins the café with its own profile; check and list --all show the Wi-Fi uplink.
t_wifi_uplink() {
    wifi_setup || return 1
    run 0 ip route get "$INTERNET" || return 1
    [[ $OUT == *" dev $WLAN "* ]] || { fail "the route to $INTERNET is not over $WLAN"; return 1; }
    run 0 busybox ping -c 2 -W 5 "$INTERNET" || return 1
    echo "  ok: the laptop reaches $INTERNET over the café's Wi-Fi"
    # check: the NAT-sharing sample (wlan0, virbr1) on this laptop: NAT's runtime needs are there.
    sample draft-shared-nat.xml wlan0="$WLAN" || return 1
    local doc=draft-shared-nat.xml
    run 0,1 "$NMIFACE" check "$doc" || return 1
    indent "$OUT"
    run 0,1 "$NMIFACE" check --json "$doc" || return 1
    local nat
    nat=$(jq -c '[.. | objects | select((.feature? // "") | startswith("NAT sharing")) | {feature, status}]' <<<"$OUT")
    if [[ $(jq '[.[] | select(.feature | test("dnsmasq|firewall")) | select(.status == "supported")] | length' <<<"$nat") != 2 ]] ||
        [[ $(jq '[.[] | select(.status == "unsupported")] | length' <<<"$nat") != 0 ]]; then
        indent "$OUT"
        fail "check does not report NAT sharing's dnsmasq and firewall backend as supported: $nat"
        return 1
    fi
    echo "  ok: check: $nat"
}

# list --all shows NetworkManager's own Wi-Fi profile as foreign: "nmiface": false, "type": "wifi".
t_wifi_list_all() {
    need_wifi || return 1
    nmi list --all || return 1
    indent "$OUT"
    nmi list --all --json || return 1
    local cafe
    cafe=$(jq -c '[.[] | select(.nmiface == false and .type == "wifi")]' <<<"$OUT")
    if [[ $cafe == '[]' || $cafe == null ]]; then
        indent "$OUT"
        fail "list --all --json has no entry with \"nmiface\": false and \"type\": \"wifi\" (the café's profile)"
        return 1
    fi
    echo "  ok: list --all --json: $cafe"
}

# The Wi-Fi NIC cannot be bridged: refused before anything changes, the remedy named.
t_wifi_bridge_refused() {
    need_wifi || return 1
    expect_refused_unchanged "$NMIFACE" bridge "$WLAN" br0
}


# The same through XML: a draft <shared bridge='br0'/> on the Wi-Fi NIC.
t_wifi_shared_xml_refused() {
    need_wifi || return 1
    echo "<interface device='$WLAN'><shared bridge='br0'/><dhcp/></interface>" >wifi-shared.xml
    # --timeout bounds what a build that does not refuse costs (it waits for the port to come up).
    expect_refused_unchanged "$NMIFACE" apply --timeout 15 wifi-shared.xml && return 0
    # Put the laptop back for the tests after this one: nmiface's profiles go, the café returns.
    "$NMIFACE" undefine br0 >/dev/null 2>&1 && echo "(cleanup: undefined br0)"
    nmcli -t -f DEVICE,STATE dev | grep -qx "$WLAN:connected" || wifi_up
    return 1
}

tx_packets() { ip -j -s link show dev "$1" | jq '.[0].stats64.tx.packets'; }

# vm_up: the VM: namespace vm, its veth vm0 with the peer vm0p a port of virbr1, and a lease from
# NetworkManager's dnsmasq there (busybox udhcpc; its script sets the address and default route).
vm_up() {
    cat >udhcpc.sh <<'EOS'
#!/bin/sh
[ "$1" = bound ] || exit 0
ip addr add "$ip/$subnet" dev "$interface"
ip route add default via "${router%% *}"
EOS
    chmod +x udhcpc.sh
    run 0 ip netns add vm || return 1
    run 0 ip link add vm0p type veth peer name vm0 netns vm || return 1
    run 0 ip link set vm0p master virbr1 up || return 1
    in_ns vm ip link set lo up
    run 0 in_ns vm ip link set vm0 up || return 1
    run 0 in_ns vm busybox udhcpc -i vm0 -n -q -t 12 -T 1 -s "$WORK/udhcpc.sh" || return 1
    local addr
    addr=$(in_ns vm ip -j -4 addr show dev vm0 | jq -r '.[0].addr_info[0].local // empty')
    [[ $addr == 10.42.7.* ]] || { indent "$OUT"; fail "the VM's lease is '$addr', not in 10.42.7.0/24"; return 1; }
    echo "  ok: the VM got $addr from NetworkManager's dnsmasq on virbr1"
}

# NAT sharing over the Wi-Fi uplink: a VM on the share bridge gets a lease and reaches the café.
t_wifi_nat_share() {
    need_wifi || return 1
    nmi share --nat --bridge virbr1 --subnet 10.42.7.0/24 || return 1
    vm_up || return 1
    expect_vm_uplink "$WLAN" || return 1
    # The finding for the uplink change: does NetworkManager's masquerade name the uplink?
    run 0 nft list ruleset || return 1
    local rules=$OUT masq
    echo "  -- nft list ruleset (NetworkManager's shared mode):"
    indent "$rules"
    masq=$(grep -E '\bmasquerade\b' <<<"$rules" | sed 's/^[[:space:]]*//')
    [[ -n $masq ]] || { fail "no masquerade rule in the ruleset"; return 1; }
    if grep -q oifname <<<"$masq"; then
        echo "  finding: the masquerade rule is bound to an output interface: $masq"
    else
        echo "  finding: the masquerade rule names no output interface ('$masq'): it follows the routing table"
    fi
}

# isp_setup: the wired uplink: wired0 on NetworkManager's profile "isp" (metric 700).
isp_setup() {
    run 0 ip netns add isp || return 1
    run 0 ip link add wired0 type veth peer name isp0 netns isp || return 1
    in_ns isp ip link set lo up
    run 0 in_ns isp ip addr add "$INTERNET/32" dev lo || return 1
    run 0 in_ns isp ip addr add 192.168.60.1/24 dev isp0 || return 1
    run 0 in_ns isp ip link set isp0 up || return 1
    run 0 dhcp_server isp isp0 192.168.60.100,192.168.60.150 isp || return 1
    # NetworkManager's udev rules leave veth devices unmanaged (container links); a laptop's
    # wired NIC is managed.
    poll 10 nmcli dev show wired0 || { fail "NetworkManager does not see wired0"; return 1; }
    run 0 nmcli dev set wired0 managed yes || return 1
    run 0 nmcli con add type ethernet ifname wired0 con-name isp ipv4.route-metric 700 ipv6.method disabled || return 1
    run 0 nmcli --wait 30 con up isp || return 1
    local addr
    addr=$(ip -j -4 addr show dev wired0 | jq -r '.[0].addr_info[0].local // empty')
    [[ $addr == 192.168.60.* ]] || { show "ip addr" ip addr show dev wired0; fail "wired0 has no lease from the ISP"; return 1; }
    echo "  ok: the wired uplink: wired0, lease $addr, route metric 700 (the café's Wi-Fi stays preferred)"
}

# The VM's continuous ping (every 0.2 s): the laptop's clock at each reply, one a line.
PING_LOG=$WORK/vm-ping.log PING_PID=
start_ping() {
    : >"$PING_LOG"
    in_ns vm busybox ping -i 0.2 "$INTERNET" 2>&1 | while IFS= read -r l; do
        [[ $l == *seq=* ]] && echo "$EPOCHREALTIME" >>"$PING_LOG"
    done &
    PING_PID=$!
}
stop_ping() {
    [[ -n $PING_PID ]] || return 0
    kill "$PING_PID" 2>/dev/null
    ip netns pids vm 2>/dev/null | xargs -r kill 2>/dev/null
    PING_PID=
}
# replied_after T: a reply came after time T (EPOCHREALTIME).
replied_after() { local l; l=$(tail -n 1 "$PING_LOG"); [[ -n $l ]] && awk -v a="$l" -v b="$1" 'BEGIN { exit !(a > b) }'; }
# silence_since T: the longest time without a reply since the last reply before T, in seconds.
silence_since() {
    awk -v t0="$1" '$1 >= t0 && p != "" && $1 - p > m { m = $1 - p } { p = $1 } END { printf "%.1f", m }' "$PING_LOG"
}

# vm_flows: the VM's ICMP flows in conntrack, with the address each is masqueraded to.
vm_flows() {
    sed -n 's/.* icmp .* src=\(10\.42\.7\.[0-9]*\) dst=\([0-9.]*\) type=8 code=0 id=\([0-9]*\) .*src=[0-9.]* dst=\([0-9.]*\) type=0 .*/  conntrack: id \3 \1 -> \2 masqueraded to \4/p' \
        /proc/net/nf_conntrack
}

# uplink_change WHAT LIMIT CMD...: run CMD under the VM's running ping; replies must come again
# within LIMIT seconds of CMD's end. Prints the longest time without replies.
uplink_change() {
    local what=$1 limit=$2 t0=$EPOCHREALTIME ms_cmd t1
    shift 2
    "$@" || { fail "$what: '$*' failed"; return 1; }
    t1=$EPOCHREALTIME
    ms_cmd=$(ms_since "$t0")
    if ! poll "$limit" replied_after "$t1"; then
        show "ip route" ip route
        vm_flows
        fail "$what: the VM's traffic did not flow again within $limit s of the change"
        return 1
    fi
    echo "  ok: $what: the VM's traffic interrupted $(silence_since "$t0") s at most (longest time without a reply; pings every 0.2 s), flowing again $(ms_since "$t0") ms after the change began (its commands took $ms_cmd ms)"
    vm_flows
}

# wifi_back_drop_wired: the café's Wi-Fi comes back (metric 600: the preferred route again while
# the wired uplink is still up), then the wired uplink goes. Says whether the VM's running flow got
# replies in the 2 s between.
wifi_back_drop_wired() {
    wifi_up || return 1
    local t=$EPOCHREALTIME
    sleep 2
    vm_flows
    if replied_after "$t"; then
        echo "  (the café back, wired still up: the VM's running ping kept getting replies)"
    else
        echo "  finding: the café back and preferred, wired still up: the VM's running ping got no reply for 2 s"
    fi
    run 0 nmcli dev disconnect wired0
}

# expect_vm_uplink DEV [OTHER]: the VM's pings to the internet leave the laptop through DEV (and
# not through OTHER).
expect_vm_uplink() {
    local a0 a1 b0=0 b1=0 n=10
    a0=$(tx_packets "$1")
    [[ -n ${2:-} ]] && b0=$(tx_packets "$2")
    # Ten pings, each sent as the last one's reply comes (-A): a just-configured uplink's own
    # traffic (ARP, DHCP) can be a few packets, never ten in that second (three were, once).
    run 0 in_ns vm busybox ping -c "$n" -A -W 5 "$INTERNET" || return 1
    a1=$(tx_packets "$1")
    [[ -n ${2:-} ]] && b1=$(tx_packets "$2")
    if ((a1 - a0 < n || b1 - b0 >= n)); then
        show "ip route" ip route
        fail "the VM's $n pings did not leave through $1 only ($((a1 - a0)) packets sent there${2:+, $((b1 - b0)) through $2})"
        return 1
    fi
    echo "  ok: the VM reaches $INTERNET through $1 ($((a1 - a0)) packets sent there${2:+, $((b1 - b0)) through $2})"
}

# The uplink changes under the running VM, with no nmiface command: the café's Wi-Fi goes (the
# wired uplink takes over), comes back, and the wired uplink goes (the Wi-Fi takes over).
t_wifi_uplink_change() {
    need_wifi || return 1
    [[ -e /run/netns/vm ]] || { fail "no VM (t_wifi_nat_share failed)"; return 1; }
    isp_setup || return 1
    expect_vm_uplink "$WLAN" wired0 || return 1
    start_ping
    poll 10 replied_after 0 || { stop_ping; fail "the VM's running ping gets no replies"; return 1; }
    local ok=1
    uplink_change "Wi-Fi disconnected" 10 run 0 nmcli dev disconnect "$WLAN" && expect_vm_uplink wired0 || ok=0
    if ((ok)); then
        uplink_change "Wi-Fi back, then wired disconnected" 10 wifi_back_drop_wired &&
            expect_vm_uplink "$WLAN" wired0 || ok=0
    fi
    stop_ping
    ((ok)) || return 1
    nmi undefine virbr1 || return 1
    expect_link_gone virbr1
}

# After a failed test: undefine whatever nmiface defined (VLANs first) and bring the NICs back up,
# so that the tests after it start clean (those that build on it fail on their own).
cleanup_after_failure() {
    local names n nic
    stop_ping
    names=$("$NMIFACE" list --all --json 2>/dev/null | jq -r '.[] | select(.nmiface) | .name' | awk '{ print (index($0, ".") ? 0 : 1), $0 }' | sort | cut -d' ' -f2)
    for n in $names; do
        "$NMIFACE" undefine "$n" >/dev/null 2>&1 && echo "(cleanup: undefined $n)"
    done
    for nic in "${NICS[@]}"; do ip link set "$nic" up; done
}

TESTS=(
    t_stock_default_profile
    t_bond_libvirt
    t_vlan_on_bond
    t_vlan_libvirt
    t_vlan_draft_reorder_hdr_no
    t_list_all
    t_undefine_all
    t_bond_draft
    t_bond_modes
    t_bridge_bond_port
    t_check
    t_wifi_uplink
    t_wifi_list_all
    t_wifi_bridge_refused
    t_wifi_shared_xml_refused
    t_wifi_nat_share
    t_wifi_uplink_change
)

passed=0 failed=0 failures=()
for t in "${TESTS[@]}"; do
    echo "== $t"
    start=$SECONDS
    "$t"
    rc=$?
    if ((rc == 0)); then
        passed=$((passed + 1))
        echo "== PASS $t ($((SECONDS - start)) s)"
    else
        failed=$((failed + 1))
        failures+=("$t")
        echo "== FAIL $t ($((SECONDS - start)) s)"
        cleanup_after_failure
    fi
    [[ $t == t_stock_default_profile ]] && remove_default_profiles
done

if ((failed)); then
    echo "failed: ${failures[*]}"
    show "nmcli dev" nmcli dev
    show "nmcli -t con show" nmcli -t con show
fi
echo "$passed passed, $failed failed"
((failed == 0))
