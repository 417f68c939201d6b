"""A seccomp filter for the bubblewrap sandbox (defence in depth, as Flatpak does with bwrap).

The namespaces already take away network, mounts and privileges; this filter also closes kernel
interfaces a sandboxed program has no business with and that have a history of privilege-escalation
bugs: debugging other processes (ptrace, process_vm_*), kernel keyrings, eBPF, perf events,
userfaultfd, io_uring, new namespaces, mounts, modules, clocks, swap, reboot. They fail with EPERM
(io_uring with ENOSYS, so runtimes such as libuv fall back to threads). Built with libseccomp
(through `pyseccomp`) and handed to `bwrap --seccomp FD`, which loads it just before the program.
"""

from __future__ import annotations

import errno
import functools
import logging
import os

log = logging.getLogger(__name__)

DENIED = (
    "acct",
    "add_key",
    "bpf",
    "clock_adjtime",
    "clock_settime",
    "delete_module",
    "finit_module",
    "fsconfig",
    "fsmount",
    "fsopen",
    "fspick",
    "init_module",
    "ioperm",
    "iopl",
    "kcmp",
    "kexec_file_load",
    "kexec_load",
    "keyctl",
    "lookup_dcookie",
    "mount",
    "mount_setattr",
    "move_mount",
    "move_pages",
    "name_to_handle_at",
    "nfsservctl",
    "open_by_handle_at",
    "open_tree",
    "perf_event_open",
    "pivot_root",
    "process_vm_readv",
    "process_vm_writev",
    "ptrace",
    "quotactl",
    "reboot",
    "request_key",
    "setns",
    "settimeofday",
    "swapoff",
    "swapon",
    "syslog",
    "umount2",
    "unshare",
    "uselib",
    "userfaultfd",
    "ustat",
    "vhangup",
)
NOT_IMPLEMENTED = ("io_uring_setup", "io_uring_enter", "io_uring_register")


@functools.cache
def seccomp_program() -> bytes | None:
    """The compiled BPF program, or None (logged once) when libseccomp is not available here."""
    try:
        import pyseccomp
    except (ImportError, OSError) as exc:  # the wheel, or libseccomp.so.2 itself, is missing
        log.warning("sandbox: no seccomp filter (libseccomp unavailable: %s)", exc)
        return None
    program = pyseccomp.SyscallFilter(pyseccomp.ALLOW)
    for names, code in ((DENIED, errno.EPERM), (NOT_IMPLEMENTED, errno.ENOSYS)):
        for name in names:
            try:
                program.add_rule(pyseccomp.ERRNO(code), name)
            except (ValueError, RuntimeError, OSError):  # not a syscall on this architecture
                continue
    fd = os.memfd_create("fimum-seccomp")
    with os.fdopen(fd, "w+b") as file:
        program.export_bpf(file)
        file.seek(0)
        return file.read()
