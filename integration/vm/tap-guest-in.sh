#!/bin/bash
# The guest side of integration/vm/tap-guest.sh, run by the guest's /init in its bare mode
# (nmiface.mode=bare: no udev, no dbus, no NetworkManager) as the share's test.sh.
#
# eth0 (the only NIC, virtio-net on the host's tap) up, a DHCP lease with busybox udhcpc, then
# pings the target named in the share's file "target". Writes KEY=VALUE lines to the share's file
# "result" (GUEST_MAC, GUEST_IP, GUEST_PREFIX, GUEST_ROUTER, DHCP_SERVER, LEASE_UPTIME_S, PING,
# PING_UPTIME_S) and exits 0 only when both the lease and the ping succeeded (1: no lease, 2: the
# ping failed). Lines "NMIFACE-VM: ..." go to the console, where the host times them. With a
# number of seconds in the share's file "hold", it then stays up that long (the host looks at a
# running VM: its lease, its place in the bridge's FDB).
set -u
SHARE=$(cd "$(dirname "$0")" && pwd)
TARGET=$(cat "$SHARE/target")
RESULT=$SHARE/result
say() { echo "NMIFACE-VM: $*" >/dev/console; }
uptime_s() { cut -d' ' -f1 /proc/uptime; }
put() { echo "$1=$2" >>"$RESULT"; }
: >"$RESULT"

ip link set eth0 up || { say "no eth0"; exit 1; }
put GUEST_MAC "$(cat /sys/class/net/eth0/address)"

# udhcpc's hook: configures the lease and keeps it in /tmp/lease (no default.script in the image).
cat >/tmp/udhcpc.sh <<'EOF'
#!/bin/sh
case $1 in
bound | renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/${mask:-24}" dev "$interface"
    for r in $router; do ip route add default via "$r" dev "$interface" && break; done
    printf 'ip=%s\nmask=%s\nrouter=%s\nserverid=%s\nlease=%s\n' \
        "$ip" "${mask:-}" "${router:-}" "${serverid:-}" "${lease:-}" >/tmp/lease
    ;;
esac
exit 0
EOF
chmod 0755 /tmp/udhcpc.sh

say "dhcp start at $(uptime_s) s"
if ! busybox udhcpc -i eth0 -n -q -t 10 -T 2 -s /tmp/udhcpc.sh || [ ! -s /tmp/lease ]; then
    say "no DHCP lease at $(uptime_s) s"
    put GUEST_IP none
    exit 1
fi
t_lease=$(uptime_s)
ip=$(sed -n 's/^ip=//p' /tmp/lease)
say "lease $ip at $t_lease s"
put GUEST_IP "$ip"
put GUEST_PREFIX "$(sed -n 's/^mask=//p' /tmp/lease)"
put GUEST_ROUTER "$(sed -n 's/^router=//p' /tmp/lease)"
put DHCP_SERVER "$(sed -n 's/^serverid=//p' /tmp/lease)"
put LEASE_SECONDS "$(sed -n 's/^lease=//p' /tmp/lease)"
put LEASE_UPTIME_S "$t_lease"
ip -br addr show dev eth0
ip route

# Up to 3 echo requests, 2 s each; the first reply ends it.
rc=2
for _ in 1 2 3; do
    if busybox ping -c 1 -W 2 "$TARGET"; then rc=0; break; fi
done
if [ "$rc" = 0 ]; then put PING ok; else put PING fail; fi
put PING_UPTIME_S "$(uptime_s)"
say "ping $TARGET: $([ "$rc" = 0 ] && echo ok || echo fail) at $(uptime_s) s"
hold=$(cat "$SHARE/hold" 2>/dev/null || echo 0)
case $hold in '' | *[!0-9]*) hold=0 ;; esac
if [ "$hold" -gt 0 ]; then say "holding ${hold} s"; sleep "$hold"; fi
exit "$rc"
