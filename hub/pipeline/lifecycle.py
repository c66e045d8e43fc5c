"""Status lifecycle of one delivery (one recipient's copy of a document). Pure.

01 arrived → 03 accepted / 02 rejected; 03 → 04 waiting for assignment → 05 assigned →
06 done. 13 (recall) only from the original sender, answered by the recipient with 15
(agree) or 16 (refuse). A system may skip 01 and answer 02 or 03 directly.
"""

from __future__ import annotations

from hub.errors import AuthorityError, ConflictError

FORWARD: dict[str | None, frozenset[str]] = {
    None: frozenset({"01", "02", "03"}),
    "01": frozenset({"02", "03"}),
    "03": frozenset({"04"}),
    "04": frozenset({"05"}),
    "05": frozenset({"06"}),
    "16": frozenset({"03", "04", "05", "06"}),  # recall refused: handling goes on
}
TERMINAL = frozenset({"02", "06", "13", "15"})
RECIPIENT_CODES = frozenset({"01", "02", "03", "04", "05", "06", "15", "16"})


def check_status(current: str | None, new: str, *, by_original_sender: bool, by_recipient: bool) -> None:
    """Raise if ``new`` may not follow ``current`` from this party."""
    if new == "13":
        if not by_original_sender:
            raise AuthorityError(
                "only the original sender may recall a document (status 13)",
                code="authority.not_original_sender", element="Status/StatusCode",
            )
        if current in {"02", "13", "15"}:
            raise ConflictError(
                f"cannot recall: the recipient's copy is already {current}", code="state.invalid_transition",
                element="Status/StatusCode",
            )
        return
    if new in RECIPIENT_CODES and not by_recipient:
        raise AuthorityError(
            f"status {new} must come from a recipient of the document", code="authority.not_recipient",
            element="Status/From/OrganId",
        )
    if new in {"15", "16"}:
        if current != "13":
            raise ConflictError(
                f"status {new} answers a recall, but the document's status is {current or 'none'}",
                code="state.invalid_transition", element="Status/StatusCode",
            )
        return
    allowed = FORWARD.get(current, frozenset())
    if new not in allowed:
        nxt = ", ".join(sorted(allowed)) or "nothing (final)"
        raise ConflictError(
            f"status {new} cannot follow {current or 'no status'}; allowed next: {nxt}",
            code="state.invalid_transition", element="Status/StatusCode",
        )
