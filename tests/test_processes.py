"""A process is gone only when that is sure: cleaning up after it must never touch live work."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from crm_ml.processes import (
    HOST,
    PID,
    PID_NAMESPACE,
    STARTED,
    _started,
    _stat,
    process_gone,
    this_process,
)

#: A pid no process has: above Linux's largest pid_max (2**22) and macOS's 99,999.
GONE_PID = 2**22 + 1

pytestmark = pytest.mark.skipif(
    os.name != "posix", reason="a process is looked up with os.kill(pid, 0), POSIX only"
)


def _named(pid: int) -> dict[str, str]:
    """Return what :func:`this_process` would have said in process ``pid`` (of this host)."""
    named = {**this_process(), PID: str(pid)}
    started = _started(_stat(pid))
    if started is not None:
        named[STARTED] = started
    return named


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(["sleep", "60"])
    yield process
    process.kill()
    process.wait(timeout=30)


def test_a_live_process_is_not_gone_and_a_killed_one_is(sleeper: subprocess.Popen[bytes]) -> None:
    tags = _named(sleeper.pid)
    assert not process_gone(tags)
    sleeper.kill()
    if hasattr(os, "waitid"):  # dead but not yet reaped by its parent: a zombie keeps its pid
        os.waitid(os.P_PID, sleeper.pid, os.WEXITED | os.WNOWAIT)
        assert process_gone(tags)
    sleeper.wait(timeout=30)
    assert process_gone(tags)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="start times come from /proc")
def test_a_pid_reused_by_another_process_is_gone() -> None:
    mine = this_process()
    assert not process_gone(mine)
    reused = {**mine, STARTED: mine[STARTED] + "0"}
    assert process_gone(reused)


def test_processes_that_cannot_be_judged_are_never_gone() -> None:
    gone_pid = {**this_process(), PID: str(GONE_PID)}
    assert process_gone(gone_pid)
    for unknowable in (
        {},  # a record without a pid
        {PID: gone_pid[PID]},  # no host
        {**gone_pid, HOST: "another-host"},
        {**gone_pid, PID_NAMESPACE: "pid:[1]"},  # a container's pids
        {**gone_pid, PID: "0"},
        {**gone_pid, PID: "-5"},
    ):
        assert not process_gone(unknowable), unknowable
