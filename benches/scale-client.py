#!/usr/bin/python3
"""Scale bench helper, talking to NetworkManager over D-Bus (Debian's python3-dbus and GLib).

  scale-client.py bare N          a bare client doing the minimum for N port-less bridges pb0..:
                                  AddConnection2 and ActivateConnection, as many in flight as the
                                  bus allows, each activation sent as soon as its profile exists;
                                  returns when all N are ACTIVATED. Prints "added S",
                                  "activated S" (seconds).
  scale-client.py watch N CMD...  runs CMD and returns when N active connections reached
                                  ACTIVATED since it started. Prints "returned S" (CMD exited),
                                  "activated S".
  scale-client.py clean PREFIX    deletes every profile whose id starts with PREFIX, all at once.

The same watcher times both, from a signal subscription made before anything starts, so the two
are measured to the same end state. Every wait is bounded (TIMEOUT seconds, default 300).
"""
import os
import subprocess
import sys
import time
import uuid

import dbus
import dbus.mainloop.glib
from gi.repository import GLib

NM = "org.freedesktop.NetworkManager"
ACTIVE = NM + ".Connection.Active"
TIMEOUT = int(os.environ.get("TIMEOUT", "300"))
ACTIVATED = 2

dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)
bus = dbus.SystemBus()
loop = GLib.MainLoop()
t0 = time.monotonic()
activated = set()
target = 0
failures = []


def elapsed():
    return time.monotonic() - t0


def state_changed(state, _reason, path=None):
    if state == ACTIVATED and path not in activated:
        activated.add(path)
        if len(activated) >= target:
            print(f"activated {elapsed():.3f}", flush=True)
            loop.quit()


def watch_activations(n):
    global target
    target = n
    bus.add_signal_receiver(state_changed, signal_name="StateChanged", dbus_interface=ACTIVE, path_keyword="path")
    GLib.timeout_add_seconds(TIMEOUT, lambda: (failures.append("timed out"), loop.quit()))


def bridge(i):
    s = {
        "connection": {
            "id": f"pb{i}",
            "uuid": str(uuid.uuid4()),
            "type": "bridge",
            "interface-name": f"pb{i}",
        },
        "bridge": {"stp": dbus.Boolean(False), "forward-delay": dbus.UInt32(0)},
        "ipv4": {
            "method": "manual",
            "address-data": dbus.Array(
                [{"address": f"10.{78 + i // 250}.{i % 250}.1", "prefix": dbus.UInt32(24)}], signature="a{sv}"
            ),
        },
        "ipv6": {"method": "disabled"},
    }
    return dbus.Dictionary(s, signature="sa{sv}")


def bare(n):
    watch_activations(n)
    settings = dbus.Interface(bus.get_object(NM, "/org/freedesktop/NetworkManager/Settings"), NM + ".Settings")
    manager = dbus.Interface(bus.get_object(NM, "/org/freedesktop/NetworkManager"), NM)
    # As many calls in flight as the bus lets one connection have (dbus-daemon refuses more than
    # 128 pending replies with LimitsExceeded); activations go first as profiles come back.
    window, in_flight, added = 120, [0], [0]
    todo = list(range(n))
    ready = []

    def pump():
        while in_flight[0] < window and (ready or todo):
            in_flight[0] += 1
            if ready:
                manager.ActivateConnection(ready.pop(), "/", "/", reply_handler=done, error_handler=on_error)
            else:
                settings.AddConnection2(
                    bridge(todo.pop(0)), dbus.UInt32(to_disk | block_autoconnect),
                    dbus.Dictionary({}, signature="sv"), reply_handler=on_added, error_handler=on_error,
                )

    def done(*_):
        in_flight[0] -= 1
        pump()

    def on_added(path, _result):
        added[0] += 1
        if added[0] == n:
            print(f"added {elapsed():.3f}", flush=True)
        ready.append(path)
        done()

    def on_error(e):
        failures.append(str(e))
        loop.quit()

    to_disk, block_autoconnect = 0x1, 0x20
    pump()
    loop.run()


def watch(n, cmd):
    watch_activations(n)
    proc = subprocess.Popen(cmd)

    def poll():
        if proc.poll() is None:
            return True
        print(f"returned {elapsed():.3f}", flush=True)
        if proc.returncode != 0:
            failures.append(f"{cmd[0]} exited {proc.returncode}")
            loop.quit()
        return False

    GLib.timeout_add(5, poll)
    loop.run()
    proc.wait(timeout=TIMEOUT)


def clean(prefix):
    settings = dbus.Interface(bus.get_object(NM, "/org/freedesktop/NetworkManager/Settings"), NM + ".Settings")
    pending = [0]

    def done(*_):
        pending[0] -= 1
        if pending[0] == 0:
            loop.quit()

    for path in settings.ListConnections():
        c = dbus.Interface(bus.get_object(NM, path), NM + ".Settings.Connection")
        if str(c.GetSettings()["connection"]["id"]).startswith(prefix):
            pending[0] += 1
            c.Delete(reply_handler=done, error_handler=done)
    if pending[0]:
        GLib.timeout_add_seconds(TIMEOUT, loop.quit)
        loop.run()


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "bare":
        bare(int(sys.argv[2]))
    elif mode == "watch":
        watch(int(sys.argv[2]), sys.argv[3:])
    elif mode == "clean":
        clean(sys.argv[2])
    else:
        sys.exit(__doc__)
    if failures:
        sys.exit("; ".join(failures))
