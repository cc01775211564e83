#!/usr/bin/python3
"""Calls a qemu bridge helper the way qemu and libvirt do, and reports what came back.

    helper-caller.py [--hold S] [--order libvirt|qemu] -- HELPER [ARGS...]

Makes a UNIX socket pair, runs HELPER ARGS... --use-vnet --br=... (the caller's own words:
ARGS must hold --br=BRIDGE; --fd=N is added here, in libvirt's order after --br or qemu's
before it) with only fds 0, 1, 2 and N open, receives one descriptor with SCM_RIGHTS, and
prints one KEY=VALUE a line:
  HELPER_EXIT=0        the helper's exit status
  HELPER_STDERR=...    its stderr, one line (empty when none)
  TAP=vtap0            the name of the tap received (TUNGETIFF), or none
  FD_MS=41             helper start to the descriptor received, milliseconds
Then, with --hold S, keeps the tap open S seconds (a running VM), closes it and prints
  GONE_MS=12           close to the tap's link gone from /sys/class/net (or GONE_MS=never
                       within 10 s)
Exit status: 0 when a tap was received and the helper exited 0, 1 otherwise, 2 on usage.
"""
import array, fcntl, os, socket, struct, subprocess, sys, time

TUNGETIFF = 0x800454D2


def main(argv):
    hold, order = None, "libvirt"
    while argv and argv[0] != "--":
        if argv[0] == "--hold":
            hold = float(argv[1]); argv = argv[2:]
        elif argv[0] == "--order":
            order = argv[1]; argv = argv[2:]
        else:
            print(__doc__, file=sys.stderr); return 2
    if not argv or len(argv) < 2:
        print(__doc__, file=sys.stderr); return 2
    cmd = argv[1:]
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    n = theirs.fileno()
    if order == "qemu":
        words = [w for w in cmd if not w.startswith("--br=")] + [f"--fd={n}"] + [w for w in cmd if w.startswith("--br=")]
    else:
        words = cmd + [f"--fd={n}"]
    t0 = time.monotonic()
    p = subprocess.Popen(words, pass_fds=(n,), stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, close_fds=True)
    theirs.close()
    ours.settimeout(60)
    fd, fd_ms = None, None
    try:
        msg, fds, _, _ = socket.recv_fds(ours, 1, 1)
        if fds:
            fd, fd_ms = fds[0], int((time.monotonic() - t0) * 1000)
    except (OSError, socket.timeout):
        pass
    _, err = p.communicate(timeout=60)
    print(f"HELPER_EXIT={p.returncode}")
    print("HELPER_STDERR=" + err.decode(errors="replace").strip().replace("\n", " | "))
    tap = None
    if fd is not None:
        ifr = fcntl.ioctl(fd, TUNGETIFF, b"\0" * 40)
        tap = ifr[:16].rstrip(b"\0").decode()
        print(f"FD_MS={fd_ms}")
    print(f"TAP={tap or 'none'}")
    sys.stdout.flush()
    if fd is not None and hold is not None:
        time.sleep(hold)
        os.close(fd)
        t1 = time.monotonic()
        gone = None
        while time.monotonic() - t1 < 10:
            if not os.path.exists(f"/sys/class/net/{tap}"):
                gone = int((time.monotonic() - t1) * 1000); break
            time.sleep(0.005)
        print(f"GONE_MS={gone if gone is not None else 'never'}")
    return 0 if fd is not None and p.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
