#!/usr/bin/python3
"""Escape probes: each tries one way out of a sandbox and prints NAME=yes when it got
through, NAME=no when it was stopped (and NAME=error:... when the probe itself broke).

The same script runs twice in the escape suite (crates/ssh/tests/escape.rs): first on the
host, as root, where every probe must print `yes` (so each one could succeed: a probe that
can never succeed proves nothing); then as the candidate in a real session over SSH, where
every probe must print `no`. Probes that would change the host are made harmless: they
run in a throw-away namespace of their own (mount, UTS), use values equal to the current
ones (the clock, a cgroup's own limit), or stop at the kernel's permission check (an
invalid argument after the check: EINVAL means "allowed", EPERM means "stopped").

Usage: escape.py TARGETS_JSON
  TARGETS_JSON: {"secret_file", "write_dir", "state_dir", "tasks_dir", "port",
                 "other_ip", "host_pid", "disk": "MAJ:MIN", "pids", "memory", "disk_limit"}
"""
import ctypes
import errno
import glob
import json
import os
import socket
import struct
import subprocess
import sys
import time

T = json.loads(sys.argv[1])
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
results = []

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWUSER, CLONE_NEWNET = 0x20000, 0x4000000, 0x10000000, 0x40000000


def sc(nr, *args):
    """A raw system call: (return value, errno)."""
    ctypes.set_errno(0)
    r = libc.syscall(ctypes.c_long(nr), *args)
    return r, ctypes.get_errno()


class Absent(Exception):
    """This kernel does not have the feature at all (ENOSYS): nobody can use it."""


def allowed(nr, *args):
    """True when the call passed the kernel's permission check (it may still fail on the
    deliberately invalid arguments, with anything but EPERM/EACCES). Raises Absent when
    the kernel lacks the call (outside seccomp: inside, the filter answers first)."""
    r, e = sc(nr, *args)
    if e == errno.ENOSYS:
        raise Absent()
    return r >= 0 or e not in (errno.EPERM, errno.EACCES)


def in_child(fn):
    """Runs fn in a forked child (for probes that unshare); True if it returned True."""
    pid = os.fork()
    if pid == 0:
        try:
            os._exit(0 if fn() else 1)
        except BaseException:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    return os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


def probe(name):
    def wrap(fn):
        try:
            ok = bool(fn())
            results.append("%s=%s" % (name, "yes" if ok else "no"))
        except Absent:
            results.append("%s=absent" % name)
        except Exception as e:  # the probe was stopped by an error of the attempt itself
            results.append("%s=no" % name if isinstance(e, OSError) else "%s=error:%r" % (name, e))
        return fn
    return wrap


def readable(path):
    with open(path, "rb") as f:
        return len(f.read(1)) >= 0


# --- host files -------------------------------------------------------------------------
@probe("read_host_secret")
def _():
    return readable(T["secret_file"])


@probe("read_state_dir")
def _():
    return len(os.listdir(T["state_dir"])) > 0


@probe("read_ssh_host_key")
def _():
    return readable(os.path.join(T["state_dir"], "ssh_host_ed25519_key"))


@probe("read_recordings")
def _():
    return len(glob.glob(os.path.join(T["state_dir"], "sessions", "*", "recording.cast"))) > 0


@probe("read_tasks_and_solutions")
def _():
    return readable(os.path.join(T["tasks_dir"], "demo", "task.yaml"))


@probe("read_host_shadow")
def _():
    with open("/etc/shadow") as f:
        text = f.read()
    # The sandbox's own shadow has only Debian's base accounts with locked passwords.
    return T["host_shadow_first_line"] in text.splitlines()


@probe("write_host_file")
def _():
    with open(os.path.join(T["write_dir"], "direct"), "w") as f:
        f.write("x")
    return True


@probe("write_via_proc_root")
def _():
    for root in glob.glob("/proc/[0-9]*/root"):
        try:
            with open(root + T["write_dir"] + "/via-root", "w") as f:
                f.write("x")
            return True
        except OSError:
            pass
    return False


@probe("write_via_proc_cwd")
def _():
    for cwd in glob.glob("/proc/[0-9]*/cwd"):
        try:
            target = os.path.join(cwd, os.path.relpath(T["write_dir"], "/"), "via-cwd")
            with open(target, "w") as f:
                f.write("x")
            return True
        except OSError:
            pass
    return False


@probe("symlink_to_host_file")
def _():
    link = "/tmp/escape-link-%d" % os.getpid()
    os.symlink(T["secret_file"], link)
    try:
        return readable(link)
    finally:
        os.unlink(link)


@probe("hardlink_to_host_file")
def _():
    link = "/tmp/escape-hard-%d" % os.getpid()
    os.link(T["secret_file"], link)
    os.unlink(link)
    return True


@probe("write_overlay_upper_dir")
def _():
    # The sandboxes' writable layers as the host sees them.
    for d in glob.glob(os.path.join(T["state_dir"], "jobs", "*")):
        try:
            with open(os.path.join(d, "escape-upper"), "w") as f:
                f.write("x")
            os.unlink(os.path.join(d, "escape-upper"))
            return True
        except OSError:
            pass
    return False


@probe("open_by_handle")
def _():
    # name_to_handle_at + open_by_handle_at: a file by its handle, past the mount tree.
    buf = ctypes.create_string_buffer(8 + 128)
    struct.pack_into("I", buf, 0, 128)
    mount_id = ctypes.c_int()
    r, _ = sc(303, -100, b"/etc/hostname", buf, ctypes.byref(mount_id), 0)
    if r < 0:
        return False
    fd = os.open("/", os.O_RDONLY)
    r, _ = sc(304, fd, buf, os.O_RDONLY)
    return r >= 0


@probe("mknod_block_device")
def _():
    # A node for the first SCSI disk (8:0): with it, a process that may open block devices
    # reads and writes a disk under every file system's back.
    def attempt(directory):
        path = os.path.join(directory, "escape-sda-%d" % os.getpid())
        try:
            os.mknod(path, 0o600 | 0o060000, os.makedev(8, 0))
            return True
        finally:
            if os.path.exists(path):
                os.unlink(path)

    if T.get("mode") == "host":
        def in_tmpfs():
            # A tmpfs of its own to make the node in (never on the host's disk).
            if libc.unshare(CLONE_NEWNS) != 0:
                return False
            libc.mount(b"none", b"/", None, 0x4000 | 0x40000, None)  # MS_REC | MS_PRIVATE
            os.makedirs("/tmp/escape-dev", exist_ok=True)
            if libc.mount(b"tmpfs", b"/tmp/escape-dev", b"tmpfs", 0, None) != 0:
                return False
            return attempt("/tmp/escape-dev")
        return in_child(in_tmpfs)
    return attempt("/tmp")


# --- processes ----------------------------------------------------------------------------
@probe("see_host_process")
def _():
    return os.path.exists("/proc/%d" % T["host_pid"]) and open(
        "/proc/%d/cmdline" % T["host_pid"], "rb").read().find(T["host_marker"].encode()) >= 0


@probe("signal_host_process")
def _():
    os.kill(T["host_pid"], 0)
    # The pid may exist inside too: it must be the host's process.
    return open("/proc/%d/cmdline" % T["host_pid"], "rb").read().find(T["host_marker"].encode()) >= 0


@probe("ptrace_pid_1")
def _():
    pid = T["host_pid"] if T.get("mode") == "host" else 1
    r, _ = sc(101, 0x4206, pid, 0, 0)  # PTRACE_SEIZE (detached when we exit)
    return r == 0


@probe("read_pid_1_memory")
def _():
    pid = T["host_pid"] if T.get("mode") == "host" else 1
    with open("/proc/%d/mem" % pid, "rb"):
        return True


# --- network ------------------------------------------------------------------------------
def connects(host):
    s = socket.create_connection((host, T["port"]), timeout=2)
    s.close()
    return True


@probe("reach_host_loopback_service")
def _():
    return connects("127.0.0.1")


@probe("reach_other_network")
def _():
    return connects(T["other_ip"])


@probe("raw_socket")
def _():
    socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP).close()
    return True


@probe("packet_socket")
def _():
    socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0).close()
    return True


@probe("vsock_socket")
def _():
    socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM).close()
    return True


@probe("configure_network")
def _():
    def attempt():
        if T.get("mode") == "host" and libc.unshare(CLONE_NEWNET) != 0:
            return False
        return subprocess.run(["ip", "addr", "add", "10.99.99.1/32", "dev", "lo"],
                              capture_output=True).returncode == 0
    return in_child(attempt)


# --- mounts, namespaces, cgroups ----------------------------------------------------------
@probe("mount_tmpfs")
def _():
    def attempt():
        libc.unshare(CLONE_NEWNS)
        return libc.mount(b"tmpfs", b"/mnt", b"tmpfs", 0, None) == 0
    return in_child(attempt) if T.get("mode") == "host" else libc.mount(b"tmpfs", b"/mnt", b"tmpfs", 0, None) == 0


@probe("unmount_proc")
def _():
    def attempt():
        libc.unshare(CLONE_NEWNS)
        libc.mount(b"none", b"/", None, 0x4000 | 0x40000, None)
        return libc.umount2(b"/proc", 2) == 0  # MNT_DETACH
    return in_child(attempt) if T.get("mode") == "host" else libc.umount2(b"/proc", 2) == 0


@probe("new_user_namespace")
def _():
    return in_child(lambda: libc.unshare(CLONE_NEWUSER) == 0)


@probe("enter_host_namespaces")
def _():
    fd = os.open("/proc/%d/ns/mnt" % (T["host_pid"] if T.get("mode") == "host" else 1), os.O_RDONLY)
    return in_child(lambda: libc.setns(fd, 0) == 0)


@probe("write_cgroup")
def _():
    # Into the cgroup it is already in: a no-op move that needs write access to the
    # cgroup file system (and would let it move anywhere else the same way).
    for line in open("/proc/self/cgroup").read().splitlines():
        _, controllers, path = line.split(":", 2)
        for procs in glob.glob("/sys/fs/cgroup/*%s/cgroup.procs" % path) + \
                glob.glob("/sys/fs/cgroup%s/cgroup.procs" % path):
            try:
                with open(procs, "w") as f:
                    f.write(str(os.getpid()))
                return True
            except OSError:
                pass
    return False


@probe("mount_cgroupfs")
def _():
    def attempt():
        libc.unshare(CLONE_NEWNS)
        os.makedirs("/tmp/escape-cg", exist_ok=True)
        return libc.mount(b"cgroup2", b"/tmp/escape-cg", b"cgroup2", 0, None) == 0
    return in_child(attempt)


# --- the kernel's global state ------------------------------------------------------------
@probe("load_kernel_module")
def _():
    return allowed(313, -1, b"", 0)  # finit_module(-1): EBADF after the check


@probe("reboot")
def _():
    return allowed(169, 0xfee1dead, 672274793, 0x12345678, None)  # invalid cmd: EINVAL after the check


@probe("kexec")
def _():
    return allowed(246, 0, 0, None, 0xffff0000)  # invalid flags: EINVAL after the check


@probe("swapon")
def _():
    return allowed(167, b"/nonexistent-swap", 0)  # ENOENT after the check


@probe("drop_caches")
def _():
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("1")
    return True


@probe("set_clock")
def _():
    ts = (ctypes.c_long * 2)()
    libc.clock_gettime(0, ts)
    return libc.clock_settime(0, ts) == 0  # to the time it already is


@probe("set_hostname")
def _():
    def attempt():
        if T.get("mode") == "host":
            libc.unshare(CLONE_NEWUTS)
        return libc.sethostname(b"escaped", 7) == 0
    return in_child(attempt)


@probe("kernel_log")
def _():
    buf = ctypes.create_string_buffer(4096)
    r, _ = sc(103, 3, buf, 4096)  # syslog(SYSLOG_ACTION_READ_ALL)
    return r >= 0


@probe("kernel_symbols")
def _():
    with open("/proc/kallsyms") as f:
        for line in f:
            return int(line.split()[0], 16) != 0
    return False


@probe("keyrings")
def _():
    return allowed(250, 0, -3, 1)  # keyctl(GET_KEYRING_ID, session, create)


@probe("bpf")
def _():
    attr = ctypes.create_string_buffer(bytes([2, 0, 0, 0, 4, 0, 0, 0, 4, 0, 0, 0, 1]) + bytes(59))
    return sc(321, 0, attr, 72)[0] >= 0


@probe("perf_event_open")
def _():
    attr = ctypes.create_string_buffer(128)
    struct.pack_into("IIQ", attr, 0, 1, 128, 0)  # PERF_TYPE_SOFTWARE, size, CPU_CLOCK
    return sc(298, attr, 0, -1, -1, 0)[0] >= 0


@probe("userfaultfd")
def _():
    return sc(323, 0o2000000)[0] >= 0


@probe("io_uring")
def _():
    return sc(425, 1, ctypes.create_string_buffer(120))[0] >= 0


# --- resources beyond the sandbox's limits ------------------------------------------------
@probe("more_processes_than_the_limit")
def _():
    want = T["pids"] + 16
    children = []
    try:
        for _ in range(want):
            pid = os.fork()
            if pid == 0:
                time.sleep(30)
                os._exit(0)
            children.append(pid)
        return True
    except OSError:
        return False
    finally:
        for pid in children:
            os.kill(pid, 9)
            os.waitpid(pid, 0)


@probe("more_disk_than_the_limit")
def _():
    path = os.path.join(T["disk_dir"], "escape-fill-%d" % os.getpid())
    want = T["disk_limit"] + (16 << 20)
    try:
        with open(path, "wb") as f:
            chunk = b"x" * (1 << 20)
            for _ in range(want >> 20):
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        return True
    except OSError:
        return False
    finally:
        if os.path.exists(path):
            os.unlink(path)


@probe("more_terminals_than_the_limit")
def _():
    fds = []
    try:
        for _ in range(80):
            fds.append(os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY))
        return True
    except OSError:
        return False
    finally:
        for fd in fds:
            os.close(fd)


# Last: where an OOM kills the whole job (cgroup v2's memory.oom.group), nothing after it
# would run. The results so far are printed first.
for line in results:
    print(line, flush=True)
results.clear()


@probe("more_memory_than_the_limit")
def _():
    want = T["memory"] + (64 << 20)
    # In a child: the OOM killer may take it.
    def attempt():
        x = bytearray(want)
        for i in range(0, want, 4096):
            x[i] = 1
        return True
    return in_child(attempt)


for line in results:
    print(line, flush=True)
print("done=%d" % len(results))
