"""The progress bar of an import: reading, validating, checking the store, writing, committing.

The phases pass over the same rows at speeds ten times apart, and on DuckDB the
commit alone takes a quarter of the time, so the bar counts each phase's
measured share of the time rather than rows or steps: it then moves about
evenly, its remaining time holds, and it is full only once the commit returns.
"""

from __future__ import annotations

from typing import Self

from tqdm.auto import tqdm

#: The phases of an import, in the order they run.
PHASES = ("reading", "validating", "checking the store", "writing", "committing")

#: Each phase's share of an import's time in percent, in :data:`PHASES` order: medians of
#: importing 1,000,000 orders here (2 cores, busy; a share varies by ±10 points from run
#: to run). The bar counts these shares rather than rows: reading, validating and writing
#: each pass over every row but at speeds ten times apart, and the commit is one call that
#: on DuckDB, writing the rows into the file, takes a quarter of the time. So weighted, the
#: bar moves about evenly in time and its remaining time holds. PostgreSQL (COPY) and SQLite
#: (executemany) spend their time writing, and commit quickly.
PHASE_SHARES = {
    "duckdb": (5, 48, 4, 15, 28),
    "postgresql": (5, 45, 1, 48, 1),
    "sqlite": (3, 25, 1, 68, 3),
}

#: tqdm's default without ``n/total`` and the rate, which would count shares, not rows.
BAR_FORMAT = "{desc}: {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}{postfix}]"


class ImportBar:
    """The progress bar of one import, moving through each phase's :data:`PHASE_SHARES`.

    A phase moves the bar as its work tells progress (:meth:`advance`); only
    :meth:`finish`, called once the commit has returned, fills it. A failed
    import closes it where it stood. Disabled, it draws nothing.
    """

    def __init__(self, table: str, dialect: str, *, enabled: bool) -> None:
        self._shares = dict(zip(PHASES, PHASE_SHARES[dialect], strict=True))
        self._bar = tqdm(
            total=sum(self._shares.values()),
            desc=f"import {table}",
            bar_format=BAR_FORMAT,
            smoothing=0,  # the average since the start: phases differ too much for a recent rate
            miniters=0,  # draw every step (at most 10 a second), not only as many as the last
            disable=not enabled,
        )
        self._start = self._share = 0.0

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._bar.close()

    def start(self, phase: str, detail: str = "") -> None:
        """Move to the start of ``phase`` (one of :data:`PHASES`) and name it."""
        self._start = sum(self._shares[p] for p in PHASES[: PHASES.index(phase)])
        self._share = self._shares[phase]
        self._move_to(self._start)
        self._bar.set_postfix_str(f"{phase} {detail}".rstrip())

    def advance(self, what: str, done: int, total: int) -> None:
        """Move through the phase to ``done`` of ``total``: a :data:`Progress`."""
        self._move_to(self._start + self._share * done / total)

    def finish(self) -> None:
        """Fill the bar: everything is written and committed."""
        self._bar.set_postfix_str("committed", refresh=False)
        self._move_to(self._bar.total)

    def _move_to(self, position: float) -> None:
        if position > self._bar.n:
            self._bar.update(position - self._bar.n)
