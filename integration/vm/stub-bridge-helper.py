#!/usr/bin/python3
# TEST FIXTURE, NOT THE PRODUCT. A stand-in qemu bridge helper that exists only to prove the
# harness integration/vm/libvirt-guest.sh before `nmiface bridge-helper` (issue 23) exists. It
# does what a bridge helper must do, the naive way:
#
#   stub-bridge-helper.py --use-vnet --br=BRIDGE --fd=N     (libvirt's order)
#   stub-bridge-helper.py --use-vnet --fd=N --br=BRIDGE     (qemu's order)
#
# runs `nmiface tap add BRIDGE --json` as the calling user (a persistent, NetworkManager-made tap:
# it outlives qemu, which is exactly what the real helper must not do), opens it with TUNSETIFF
# (IFF_TAP | IFF_NO_PI, | IFF_VNET_HDR with --use-vnet), sends the open fd over the UNIX socket
# fd N (one byte of data, SCM_RIGHTS) and exits 0. On any failure: one line on stderr, exit 1.
#
# Before anything else it appends what it was given to $HOME/stub-bridge-helper.log (or
# /tmp/stub-bridge-helper-UID.log without HOME): argv, the environment as exec'd, its open fds (targets and
# flags), its uid/gid/groups, capabilities, cwd, umask and parent, so that a harness run shows
# what a bridge helper really receives from libvirt or qemu.
#
# nmiface: $NMIFACE_BIN, else `nmiface` on PATH, else /opt/nmiface-stub/nmiface.
# NMIFACE_STUB_REFUSE=1 (or a bridge named "refuse*"): refuse with a line on stderr (exit 1),
# for proving that the harness reports a helper's refusal.
import fcntl
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import time

TUNSETIFF = 0x400454CA
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
IFF_VNET_HDR = 0x4000


def fail(msg):
    print(f"stub-bridge-helper: {msg}", file=sys.stderr)
    sys.exit(1)


def dump(log):
    lines = [f"== {time.strftime('%H:%M:%S')} pid {os.getpid()} ppid {os.getppid()}"]
    lines.append(f"argv={sys.argv!r}")
    lines.append(f"uid={os.getuid()} euid={os.geteuid()} gid={os.getgid()} groups={os.getgroups()}")
    mask = os.umask(0o022)
    os.umask(mask)
    lines.append(f"cwd={os.getcwd()} umask={oct(mask)}")
    try:
        with open(f"/proc/{os.getppid()}/cmdline", "rb") as f:
            parent = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        lines.append(f"parent={parent}")
        with open("/proc/self/status") as f:
            lines += [line.strip() for line in f if line.startswith(("Cap", "NoNewPrivs", "Seccomp"))]
    except OSError as e:
        lines.append(f"proc: {e}")
    # The environment as exec'd (/proc/self/environ): os.environ also has what Python adds itself
    # (PEP 538 sets LC_CTYPE=C.UTF-8 when the locale is C).
    try:
        with open("/proc/self/environ", "rb") as f:
            env = sorted(e.decode(errors="replace") for e in f.read().split(b"\0") if e)
    except OSError:
        env = sorted(f"{k}={v}" for k, v in os.environ.items())
    lines += [f"env {e}" for e in env]
    for fd in sorted(int(n) for n in os.listdir("/proc/self/fd")):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
            with open(f"/proc/self/fdinfo/{fd}") as f:
                info = " ".join(line.strip() for line in f if line.startswith(("flags", "iff")))
        except OSError:
            continue  # the listing's own fd
        lines.append(f"fd {fd} -> {target} ({info})")
    try:
        with open(log, "a") as f:
            f.write("\n".join(lines) + "\n")
    except OSError as e:
        print(f"stub-bridge-helper: cannot write {log}: {e} (going on)", file=sys.stderr)


def main():
    home = os.environ.get("HOME")
    dump(f"{home}/stub-bridge-helper.log" if home else f"/tmp/stub-bridge-helper-{os.getuid()}.log")
    vnet, br, fd = False, None, None
    for a in sys.argv[1:]:
        if a == "--use-vnet":
            vnet = True
        elif a.startswith("--br="):
            br = a[5:]
        elif a.startswith("--fd="):
            fd = a[5:]
        else:
            fail(f"unknown argument {a!r}")
    if not br or fd is None or not fd.isdigit():
        fail("usage: --use-vnet --br=BRIDGE --fd=N")
    fd = int(fd)
    if os.environ.get("NMIFACE_STUB_REFUSE") == "1" or br.startswith("refuse"):
        fail(f"refused: bridge {br} is not yours (fixture refusal)")
    try:
        sock = socket.socket(fileno=fd)
    except OSError as e:
        fail(f"--fd={fd} is not a socket: {e}")

    nmiface = os.environ.get("NMIFACE_BIN") or shutil.which("nmiface") or "/opt/nmiface-stub/nmiface"
    out = subprocess.run([nmiface, "tap", "add", br, "--json"], capture_output=True, text=True)
    if out.returncode != 0:
        msg = (out.stderr.strip().splitlines() or [f"exit {out.returncode}"])[-1]
        fail(f"nmiface tap add {br}: {msg}")
    try:
        tap = json.loads(out.stdout)["tap"]
    except (ValueError, KeyError, TypeError) as e:
        fail(f"nmiface tap add {br} --json: no tap in its output ({e})")

    flags = IFF_TAP | IFF_NO_PI | (IFF_VNET_HDR if vnet else 0)
    try:
        tun = os.open("/dev/net/tun", os.O_RDWR | os.O_CLOEXEC)
        fcntl.ioctl(tun, TUNSETIFF, struct.pack("16sH", tap.encode(), flags))
    except OSError as e:
        fail(f"open {tap}: {e}")
    try:
        socket.send_fds(sock, [b"\0"], [tun])
    except OSError as e:
        fail(f"send the fd of {tap}: {e}")
    sys.exit(0)


main()
