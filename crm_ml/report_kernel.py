"""How a report run's kernel is reached and stopped.

Imported only when a report runs: jupyter_client is not needed before then.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from jupyter_client.manager import AsyncKernelManager
from traitlets.config import Config

#: How ipykernel (7.4) logs its iopub socket closing under a last flush at shutdown
#: (ipython/ipykernel#1518 fixed one such path): a traceback that ends in
#: :data:`_SHUTDOWN_RACE_ERROR`, written to the stderr the kernel shares with us.
_SHUTDOWN_RACE_HEADER = "ERROR:tornado.general:Uncaught exception in ZMQStream callback"
_SHUTDOWN_RACE_ERROR = "zmq.error.ZMQError: Socket operation on non-socket"
#: How long a stopped kernel's last lines may take to arrive (a child process of the
#: kernel that still holds its stderr would keep it open for ever).
_STDERR_DRAIN_S = 5.0


def without_shutdown_race(lines: Iterable[str]) -> Iterable[str]:
    """Yield a kernel's stderr lines, less the tracebacks of the shutdown race.

    A traceback under :data:`_SHUTDOWN_RACE_HEADER` is held until its last line
    (the first unindented one after ``Traceback``), then dropped if it is the race
    and passed on whole otherwise; every other line passes at once.
    """
    held: list[str] = []
    for line in lines:
        if not held and line.rstrip("\n") != _SHUTDOWN_RACE_HEADER:
            yield line
            continue
        held.append(line)
        if len(held) == 2 and not line.startswith("Traceback"):
            yield from held
            held = []
        elif len(held) > 2 and not line.startswith(" "):
            if not line.startswith(_SHUTDOWN_RACE_ERROR):
                yield from held
            held = []
    yield from held


def _forward(pipe: int) -> None:
    with open(pipe, encoding="utf-8", errors="replace") as lines:
        for line in without_shutdown_race(lines):
            sys.stderr.write(line)
            sys.stderr.flush()


class ReportKernelManager(AsyncKernelManager):
    """Stops a run's kernel with a shutdown request alone, not a SIGINT before it.

    jupyter_client interrupts a kernel before asking it to shut down, to stop code
    still running. A report's kernel has finished its cells by then, but it may
    still be completing the last reply: the signal then lands in ipykernel's own
    handler, which logs "ERROR | KeyboardInterrupt caught in kernel." to the
    stderr the kernel shares with us. A run that succeeded would write an error
    into the cron log (2 of 110 runs on a loaded machine). A kernel
    that does not exit on the request, such as one whose cell timed out, still gets
    SIGTERM, then SIGKILL: it stops about 2 s later than after an interrupt.

    The kernel's stderr reaches ours through a pipe, as it is written, less the
    traceback ipykernel logs when its socket closes under a last flush at shutdown
    (1 of some 100 runs on a loaded machine), for the same reason.
    """

    _stderr_forwarder: threading.Thread | None = None

    async def _async_interrupt_kernel(self) -> None:
        if not self.shutting_down:
            await super()._async_interrupt_kernel()

    async def _async_launch_kernel(self, kernel_cmd: list[str], **kw: Any) -> None:
        if "stderr" in kw:
            await super()._async_launch_kernel(kernel_cmd, **kw)
            return
        read, write = os.pipe()
        try:
            await super()._async_launch_kernel(kernel_cmd, stderr=write, **kw)
        except BaseException:
            os.close(read)
            raise
        finally:
            os.close(write)  # the kernel holds its own copy: the pipe ends when it exits
        self._stderr_forwarder = threading.Thread(
            target=_forward, args=(read,), name="kernel-stderr", daemon=True
        )
        self._stderr_forwarder.start()

    async def _async_cleanup_resources(self, restart: bool = False) -> None:
        await super()._async_cleanup_resources(restart=restart)
        if self._stderr_forwarder is not None:
            self._stderr_forwarder.join(_STDERR_DRAIN_S)
            self._stderr_forwarder = None


def kernel_options(sockets: Path) -> dict[str, Any]:
    """Give papermill a run's kernel options: Unix sockets in ``sockets``, a quiet stop.

    Over the default TCP transport the kernel warns "Kernel is running over TCP
    without encryption": its loopback ports are reachable by every local user.
    Unix sockets in a private temporary folder (mode 0700) are not. The folder is
    one per run, because the default socket prefix ``kernel-ipc`` is relative to
    the notebooks folder and two concurrent runs would pick the same names; and a
    short one, because a socket path must fit in about 100 bytes.
    """
    return {
        "kernel_manager_class": ReportKernelManager,
        "config": Config({"KernelManager": {"transport": "ipc", "ip": str(sockets / "kernel")}}),
    }
