"""How a report run's kernel is reached and stopped.

Imported only when a report runs: jupyter_client is not needed before then.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jupyter_client.manager import AsyncKernelManager
from traitlets.config import Config


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
    """

    async def _async_interrupt_kernel(self) -> None:
        if not self.shutting_down:
            await super()._async_interrupt_kernel()


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
