"""Which process started a piece of work, and whether that process is gone.

A run killed outright (``kill -9``, a lost machine) cannot clean up after
itself: a report run leaves its staging folder, a training run leaves its
MLflow run ``RUNNING``. Each records :func:`this_process`; a later run cleans
up only what :func:`process_gone` is sure belongs to a process that ended.
Whenever that cannot be known (another machine, another container, an
older record), the answer is "not gone": leaving a leftover is safer than
deleting a live run's work.
"""

from __future__ import annotations

import getpass
import os
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any

#: Keys of :func:`this_process`; the last two only on Linux.
HOST, PID, PID_NAMESPACE, STARTED = "host", "pid", "pid_namespace", "process_start"


def login_name() -> str:
    """Return the user's login name (``LOGNAME``, ``USER``, …), or ``crm-ml`` if there is none.

    Recorded as who ran an export; not authenticated (anyone can set ``LOGNAME``).
    """
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name in some containers
        return "crm-ml"


def this_process() -> dict[str, str]:
    """Return what names this process for :func:`process_gone`: host, pid and, on Linux, more.

    The pid namespace tells a container's pids from the host's, and the start
    time (with the boot id) tells this process from a later one given the same pid.
    """
    named = {HOST: socket.gethostname(), PID: str(os.getpid())}
    namespace, started = _pid_namespace(), _started(_stat(os.getpid()))
    if namespace is not None:
        named[PID_NAMESPACE] = namespace
    if started is not None:
        named[STARTED] = started
    return named


def process_gone(named: Mapping[str, Any]) -> bool:
    """Return whether the process :func:`this_process` once named is known to have ended.

    False whenever it cannot be known: another host, another pid namespace, a
    record without a pid, or Windows (where ``os.kill(pid, 0)`` would end the
    process, not probe it). A zombie, or a pid now held by a process that
    started at another time, is gone.
    """
    pid = str(named.get(PID, ""))
    if os.name != "posix" or not pid.isdigit() or int(pid) <= 0:
        return False
    if named.get(HOST) != socket.gethostname():
        return False  # another machine's process cannot be seen from here
    recorded_namespace = named.get(PID_NAMESPACE)
    if recorded_namespace is not None and recorded_namespace != _pid_namespace():
        return False  # its pids are not ours (a container sharing the host name)
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # alive, another user's: its start time still tells if the pid was reused
    except OSError:
        return False
    stat = _stat(int(pid))
    if stat and stat[0] in ("Z", "X"):  # killed, waiting for its parent to reap it
        return True
    recorded, current = named.get(STARTED), _started(stat)
    return recorded is not None and current is not None and current != recorded


def _stat(pid: int) -> list[str] | None:
    """Return the fields of ``/proc/<pid>/stat`` after the command name (Linux), else None.

    The command name is in parentheses and may hold spaces and parentheses
    itself, so the fields start after the last ``)``: the state, then field 4.
    """
    try:
        text = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    return text.rpartition(")")[2].split()


def _started(stat: list[str] | None) -> str | None:
    """Return ``<boot id>/<start in clock ticks since boot>`` (field 22), else None."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text(encoding="ascii").strip()
    except OSError:
        return None
    return f"{boot}/{stat[19]}" if stat and len(stat) > 19 else None


def _pid_namespace() -> str | None:
    """Return this process's pid namespace (Linux, e.g. ``pid:[4026531836]``), else None."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None
