"""Importing the CDNOW transaction data set as customers and orders.

Two layouts exist (whitespace separated, CRLF line ends):

- ``CDNOW_master.txt``: a header line, then ``id YYYYMMDD cds dollars``
  (23,570 customers who first bought in Q1 1997, purchases to 1998-06-30);
- ``CDNOW_sample.txt``: no header, ``master_id sample_id YYYYMMDD cds dollars``
  (a 1/10 sample). The sample's own sequence number is dropped and the master
  id kept, so a customer has the same id whichever file was loaded.

Each file is read whole and checked first: a malformed line is a
:class:`~crm_ml.errors.ValidationError` naming the file and line, and nothing is
written. Then, through the regular importers
(:func:`crm_ml.store.loading.import_frame`, idempotent on re-import):

- ``customer``: id kept as text (``00001``), ``created_at`` = first purchase day,
  ``acquisition_channel`` ``web``, not a loyalty member;
- ``orders``: one order per customer and day — same-day records are one
  transaction split in the source, so their CDs and dollars are summed —
  ``order_id`` ``<id>-<YYYYMMDD>``, channel ``online``, no discount;
- ``product`` ``CDNOW-CD`` (category ``music``) and one ``order_item`` per
  order with ``quantity`` = number of CDs, so the CD count is kept.

Dates are calendar days without a zone: they are stored as midnight, read in
UTC so that no time-zone shift moves them to another day.

**Zero-dollar records** (80 in the master file, 8 in the sample, all of one CD)
are kept as orders with ``net_amount`` 0. They are purchases that happened
(most likely free or promotional CDs), and for 68 of the 80 customers (all 8
in the sample) it is their only record: dropping it would drop them from the
Q1 1997 cohort and change the customer count every CDNOW study reports.
Revenue sums are unaffected.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from crm_ml.errors import ValidationError
from crm_ml.store.connection import Store
from crm_ml.store.loading import LoadResult, import_frame

log = logging.getLogger(__name__)

PRODUCT_ID = "CDNOW-CD"
MASTER_FIELDS = ("customer_id", "date", "cds", "dollars")
SAMPLE_FIELDS = ("customer_id", "sample_id", "date", "cds", "dollars")

_ID = re.compile(r"\d+")
_DATE = re.compile(r"(19|20)\d{6}")
_CDS = re.compile(r"\d+")
_DOLLARS = re.compile(r"\d+(\.\d+)?")


@dataclass(frozen=True)
class CdnowImport:
    """What :func:`import_cdnow` loaded.

    Attributes
    ----------
    source : str
        The file read.
    records : int
        Transaction records in the file.
    customers, orders : int
        Customers and orders (distinct customer-days) in the file.
    revenue : float
        Sum of dollars.
    zero_value_orders : int
        Orders of 0 dollars, kept (see the module docstring).
    loads : tuple of LoadResult
        One per table loaded: customer, product, orders, order_item.
    """

    source: str
    records: int
    customers: int
    orders: int
    revenue: float
    zero_value_orders: int
    loads: tuple[LoadResult, ...]

    def summary(self) -> str:
        """Describe the import in plain text, for ``crm-ml import cdnow``."""
        head = (
            f"CDNOW {self.source}: {self.records:,} records -> {self.customers:,} customers, "
            f"{self.orders:,} orders ({self.zero_value_orders} of $0), "
            f"revenue ${self.revenue:,.2f}"
        )
        return "\n".join([head, *(f"  {load.summary()}" for load in self.loads)])


# --------------------------------------------------------------------------- reading


def _bad_line(path: Path, line: int, text: str, problem: str) -> ValidationError:
    return ValidationError(
        f"{path.name} line {line}: {problem}; found {text.strip()!r}. CDNOW lines are "
        "'id YYYYMMDD cds dollars' (the sample has the sample id after the master id). "
        "Fix or remove the line and import again."
    )


def _split(path: Path) -> tuple[list[list[str]], list[int], list[str]]:
    """Fields, line numbers and raw text of the data lines (header and blanks skipped)."""
    try:
        text = path.read_text(encoding="ascii")
    except UnicodeDecodeError as exc:
        raise ValidationError(
            f"{path.name} is not plain ASCII text (byte {exc.start}); is it a CDNOW file?"
        ) from exc
    fields, numbers, raw = [], [], []
    for number, line in enumerate(text.splitlines(), start=1):
        parts = line.split()
        if not parts or (number == 1 and not _ID.fullmatch(parts[0])):
            continue
        fields.append(parts)
        numbers.append(number)
        raw.append(line)
    if not fields:
        raise ValidationError(f"{path.name} holds no CDNOW records.")
    return fields, numbers, raw


def _layout(path: Path, first: list[str], line: int, text: str) -> tuple[str, ...]:
    """Return the field names of the first record's layout; refuse a record of neither."""
    for names in (MASTER_FIELDS, SAMPLE_FIELDS):
        if len(first) == len(names):
            return names
    # Checked apart from the other lines: a layout guessed from this line would only
    # report that the line disagrees with itself.
    commas = " (it looks comma-separated)" if "," in text else ""
    raise ValidationError(
        f"{path.name} does not look like a CDNOW file: line {line} has {len(first)} field(s) "
        f"separated by spaces{commas}; found {text.strip()!r}. A CDNOW line holds 4 fields "
        "separated by spaces, "
        "'id YYYYMMDD cds dollars' (e.g. '00001 19970101 1 11.77'), or 5 in the sample "
        "file, which has the sample id after the master id. To load a CSV file, import it "
        "into its table (e.g. `crm-ml import customer FILE`)."
    )


def _check_field(path: Path, frame: pd.DataFrame, column: str, pattern: re.Pattern[str]) -> None:
    bad = ~frame[column].str.fullmatch(pattern.pattern)
    if bad.any():
        first = frame[bad].iloc[0]
        raise _bad_line(
            path, first["line"], first["text"], f"{column} {first[column]!r} is invalid"
        )


def read_cdnow(path: str | Path) -> pd.DataFrame:
    """Read a CDNOW master or sample file into one row per record.

    Returns
    -------
    pandas.DataFrame
        Default index; columns ``customer_id`` (str), ``ordered_at`` (midnight of the
        purchase day, ``datetime64[us]``), ``cds`` (int64), ``dollars`` (float64)
        and ``line`` (line number in the file).

    Raises
    ------
    ValidationError
        If a line has the wrong number of fields or an invalid value; the message
        names the file and line.
    """
    path = Path(path)
    fields, numbers, raw = _split(path)
    names = _layout(path, fields[0], numbers[0], raw[0])
    for parts, number, text in zip(fields, numbers, raw, strict=True):
        if len(parts) != len(names):
            raise _bad_line(path, number, text, f"expected {len(names)} fields like line "
                            f"{numbers[0]}, got {len(parts)}")  # fmt: skip
    frame = pd.DataFrame(fields, columns=list(names), dtype="str").assign(line=numbers, text=raw)
    for column, pattern in (("customer_id", _ID), ("date", _DATE), ("cds", _CDS)):
        _check_field(path, frame, column, pattern)
    _check_field(path, frame, "dollars", _DOLLARS)
    ordered_at = pd.to_datetime(frame["date"], format="%Y%m%d", errors="coerce")
    if ordered_at.isna().any():
        first = frame[ordered_at.isna()].iloc[0]
        raise _bad_line(path, first["line"], first["text"], f"date {first['date']!r} is not a day")
    return pd.DataFrame(
        {
            "customer_id": frame["customer_id"],
            "ordered_at": ordered_at.astype("datetime64[us]"),
            "cds": frame["cds"].astype("int64"),
            "dollars": frame["dollars"].astype("float64"),
            "line": frame["line"].astype("int64"),
        }
    )


# --------------------------------------------------------------------------- shaping


def cdnow_orders(records: pd.DataFrame) -> pd.DataFrame:
    """Merge each customer's same-day records into one order.

    Returns
    -------
    pandas.DataFrame
        One row per customer and day, sorted by ``customer_id`` and ``ordered_at``;
        columns ``order_id``, ``customer_id``, ``ordered_at``, ``cds`` (int64) and
        ``dollars`` (float64, rounded to cents).
    """
    days = records.groupby(["customer_id", "ordered_at"], as_index=False, sort=True).agg(
        cds=("cds", "sum"), dollars=("dollars", "sum")
    )
    days["dollars"] = days["dollars"].round(2)
    order_id = days["customer_id"] + "-" + days["ordered_at"].dt.strftime("%Y%m%d")
    return days.assign(order_id=order_id.astype("str"))[
        ["order_id", "customer_id", "ordered_at", "cds", "dollars"]
    ]


def _customer_frame(orders: pd.DataFrame) -> pd.DataFrame:
    first = orders.groupby("customer_id", as_index=False, sort=True)["ordered_at"].min()
    return pd.DataFrame(
        {
            "customer_id": first["customer_id"],
            "acquisition_channel": "web",
            "is_member": False,
            "created_at": first["ordered_at"],
        }
    )


def _product_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "product_id": [PRODUCT_ID],
            "name": ["CD"],
            "category": ["music"],
            "brand": ["CDNOW"],
            "list_price": [float("nan")],
        }
    )


def _orders_frame(orders: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "order_id": orders["order_id"],
            "customer_id": orders["customer_id"],
            "ordered_at": orders["ordered_at"],
            "channel": "online",
            "gross_amount": orders["dollars"],
            "discount_amount": 0.0,
            "net_amount": orders["dollars"],
        }
    )


def _items_frame(orders: pd.DataFrame) -> pd.DataFrame:
    with_cds = orders[orders["cds"] > 0]
    return pd.DataFrame(
        {
            "order_id": with_cds["order_id"],
            "line_no": 1,
            "product_id": PRODUCT_ID,
            "quantity": with_cds["cds"],
            "amount": with_cds["dollars"],
            "discount_amount": 0.0,
            "refund_amount": 0.0,
        }
    )


# --------------------------------------------------------------------------- loading


def import_cdnow(store: Store, path: str | Path, *, progress: bool = False) -> CdnowImport:
    """Load a CDNOW master or sample file as customers, orders and order lines.

    Parameters
    ----------
    store : Store
        An initialised store.
    path : str or Path
        ``CDNOW_master.txt`` or ``CDNOW_sample.txt``.
    progress : bool
        Show progress bars of the underlying imports.

    Returns
    -------
    CdnowImport
        Counts of the file and the :class:`LoadResult` of each table; loading the
        same file again inserts nothing.

    Raises
    ------
    ValidationError
        If a line is malformed (the message names file and line); nothing is written.
    """
    path = Path(path)
    records = read_cdnow(path)
    orders = cdnow_orders(records)
    source = path.name
    frames = (
        ("customer", _customer_frame(orders)),
        ("product", _product_frame()),
        ("orders", _orders_frame(orders)),
        ("order_item", _items_frame(orders)),
    )
    loads = tuple(
        import_frame(store, table, frame, source=source, timezone="UTC", progress=progress)
        for table, frame in frames
    )
    result = CdnowImport(
        source=source,
        records=len(records),
        customers=int(orders["customer_id"].nunique()),
        orders=len(orders),
        revenue=round(float(records["dollars"].sum()), 2),
        zero_value_orders=int((orders["dollars"] == 0).sum()),
        loads=loads,
    )
    log.info("%s", result.summary().splitlines()[0])
    return result
