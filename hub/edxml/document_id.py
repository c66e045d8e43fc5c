"""DocumentIds: any non-empty token on the wire, often in the standard's form
``{sender OrganId},{yyyy/MM/dd},{number/notation}`` (``000.00.00.G22,2015/09/30,7816/VPCP-TTĐT``),
which :func:`parse_document_id` splits when present. Relayed traffic also carries UUIDs."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

__all__ = ["DocumentRef", "parse_document_id"]


@dataclass(frozen=True)
class DocumentRef:
    """A DocumentId in the standard's form ``{sender},{yyyy/MM/dd},{number/notation}``."""

    sender: str  # the sender's agency code
    date_text: str  # yyyy/MM/dd as written (not always a calendar date: 2014/02/30 is real)
    number_notation: str  # e.g. 7816/VPCP-TTĐT

    @property
    def promulgation_date(self) -> date | None:
        """The date part as a calendar date, or None when it is not one."""
        try:
            return date(int(self.date_text[:4]), int(self.date_text[5:7]), int(self.date_text[8:]))
        except ValueError:
            return None


_DOCUMENT_ID_FORM = re.compile(
    r"(?P<sender>[0-9]{3}\.[0-9]{2}\.[0-9]{2}\.[A-Z][0-9]{2}),(?P<date>[0-9]{4}/[0-9]{2}/[0-9]{2}),(?P<rest>\S(?:.*\S)?)"
)


def parse_document_id(value: str) -> DocumentRef | None:
    """The parts of a DocumentId in the standard's form, or None (a UUID, another token)."""
    m = _DOCUMENT_ID_FORM.fullmatch(value or "")
    if m is None:
        return None
    return DocumentRef(m.group("sender"), m.group("date"), m.group("rest"))
