"""Tables as files for officials: CSV (UTF-8 with BOM, ``;`` between fields as Excel expects where
the decimal mark is a comma) and XLSX (openpyxl), dates as dd/MM/yyyy HH:mm in Vietnam time.

Cells that a spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@`` first) are prefixed
with ``'`` in CSV and stored as text in XLSX.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import AsyncIterable, Sequence
from datetime import date, datetime

from aiohttp import web

from hub.web.i18n import fmt_date, fmt_num, fmt_time, vn

log = logging.getLogger("hub.web")
FORMULA = ("=", "+", "-", "@", "\t", "\r")


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return fmt_time(value)
    if isinstance(value, date):
        return fmt_date(value)
    if isinstance(value, float):
        return fmt_num(value, 2)
    if isinstance(value, int):
        return str(value)  # a number, not a formula, even when negative
    text = str(value)
    return "'" + text if text.startswith(FORMULA) else text


def csv_lines(rows: Sequence[Sequence]) -> bytes:
    """Rows as CSV lines (the header is a row like any other)."""
    buf = io.StringIO()
    w = csv.writer(buf, delimiter=";", lineterminator="\r\n")
    for r in rows:
        w.writerow([_text(v) for v in r])
    return buf.getvalue().encode("utf-8")


def to_csv(header: Sequence[str], rows: Sequence[Sequence]) -> bytes:
    return "\ufeff".encode() + csv_lines([header, *rows])


async def stream_csv(request: web.Request, response: web.StreamResponse, header: Sequence[str],
                     batches: AsyncIterable[Sequence[Sequence]]) -> web.StreamResponse:
    """Send a CSV as it is read, a batch of rows at a time: never the whole file in memory.

    ``response`` carries the headers (type, file name); it is sent before the first row is read,
    so a failure half-way cannot become an error page any more: it is logged and the connection
    closed before the chunked body's end, so the browser reports the download as failed rather
    than keeping a file that looks complete."""
    await response.prepare(request)
    try:
        await response.write("\ufeff".encode() + csv_lines([header]))
        async for rows in batches:
            await response.write(csv_lines(rows))
    except Exception as e:  # noqa: BLE001 - headers are sent: no error page can follow
        log.error("CSV export %s failed half-way: %s", request.path, e, exc_info=e)
        if request.transport is not None:
            request.transport.close()
        return response
    await response.write_eof()
    return response


def to_xlsx(title: str, header: Sequence[str], rows: Sequence[Sequence], heading: Sequence[str] = ()) -> bytes:
    # imported on the first export, not at start: openpyxl is ~175 modules (~5 MB of every hub serve)
    from openpyxl import Workbook
    from openpyxl.styles import Font

    wb = Workbook()
    ws = wb.active
    ws.title = title[:31]
    for line in heading:
        ws.append([line])
        ws.cell(ws.max_row, 1).font = Font(bold=True)
    if heading:
        ws.append([])
    ws.append(list(header))
    for cell in ws[ws.max_row]:
        cell.font = Font(bold=True)
    for r in rows:
        ws.append([_xl(v) for v in r])
        for cell in ws[ws.max_row]:
            if isinstance(cell.value, datetime):
                cell.number_format = "dd/mm/yyyy hh:mm"
            elif isinstance(cell.value, date):
                cell.number_format = "dd/mm/yyyy"
            elif isinstance(cell.value, float):
                cell.number_format = "#,##0.00"
            elif isinstance(cell.value, int):
                cell.number_format = "#,##0"
    for col in ws.columns:
        width = max((len(str(c.value)) for c in col if c.value is not None), default=8)
        ws.column_dimensions[col[0].column_letter].width = min(60, max(10, width + 2))
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def _xl(value):
    if isinstance(value, datetime):
        return vn(value).replace(tzinfo=None)  # Excel has no time zones: Vietnam wall time
    if isinstance(value, str) and value.startswith(FORMULA):
        return "'" + value
    return value
