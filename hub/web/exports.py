"""Tables as files for officials: CSV (UTF-8 with BOM, ``;`` between fields as Excel expects where
the decimal mark is a comma) and XLSX (openpyxl), dates as dd/MM/yyyy HH:mm in Vietnam time.

Cells that a spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@`` first) are prefixed
with ``'`` in CSV and stored as text in XLSX.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import date, datetime

from hub.web.i18n import fmt_date, fmt_num, fmt_time, vn

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
    text = str(value)
    return "'" + text if text.startswith(FORMULA) else text


def to_csv(header: Sequence[str], rows: Sequence[Sequence]) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, delimiter=";", lineterminator="\r\n")
    w.writerow(header)
    for r in rows:
        w.writerow([_text(v) for v in r])
    return ("\ufeff" + buf.getvalue()).encode("utf-8")


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
