#!/usr/bin/python3
"""Scale bench helper for benches/thousand.sh, talking to NetworkManager over D-Bus (Debian's
python3-dbus and GLib).

  scale-client.py watch N CMD...  runs CMD and returns when N active connections reached
                                  ACTIVATED since it started. Prints "returned S" (CMD exited),
                                  "activated S".

The same watcher times nmiface and the bare client (examples/bare_bridges.rs), from a signal
subscription made before either starts, so the two are measured to the same end state. Every
wait is bounded (TIMEOUT seconds, default 300).
"""
import os
import subprocess
import sys
import time

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


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "watch":
        watch(int(sys.argv[2]), sys.argv[3:])
    else:
        sys.exit(__doc__)
    if failures:
        sys.exit("; ".join(failures))
