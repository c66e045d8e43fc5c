"""Each check stage's outcome for one package, for ``hub check --explain``. Pure.

The checks run parse → schema → signature → trust → authority and stop at the first refusal
(:mod:`hub.pipeline.checks`). This lays the verdict out stage by stage: the stages before the
refusal passed, the refusing one says why (with every schema error when it is the schema),
the later ones were not reached; and it says what signature the package carries.
"""

from __future__ import annotations

from dataclasses import dataclass

from hub.edxml.schema import SchemaValidator
from hub.pipeline.checks import Verdict

STAGES = ("parse", "schema", "signature", "trust", "authority")
OK, REFUSED, NOT_REACHED = "ok", "refused", "not reached"


@dataclass(frozen=True)
class StageOutcome:
    stage: str
    outcome: str  # OK, REFUSED or NOT_REACHED
    detail: str = ""
    errors: tuple[str, ...] = ()  # every schema error, when the schema refused

    def as_dict(self) -> dict:
        d = {"stage": self.stage, "outcome": self.outcome, "detail": self.detail}
        if self.errors:
            d["errors"] = list(self.errors)
        return d

    def lines(self) -> list[str]:
        head = f"  {self.stage + ':':<11}{self.outcome}"
        out = [f"{head} - {self.detail}" if self.detail else head]
        out += [f"      {e}" for e in self.errors]
        return out


def explain_stages(data: bytes, verdict: Verdict, validator: SchemaValidator) -> list[StageOutcome]:
    """Every stage's outcome for ``data`` checked into ``verdict``."""
    refused_at = None if verdict.accepted else verdict.stage
    if refused_at not in STAGES and refused_at is not None:
        refused_at = "authority" if verdict.signature is not None else "schema"  # "check": unreadable input
    out: list[StageOutcome] = []
    reached = True
    for stage in STAGES:
        if not reached:
            out.append(StageOutcome(stage, NOT_REACHED))
            continue
        if stage == refused_at:
            errors = tuple(validator.explain(data)) if stage == "schema" else ()
            detail = f"{verdict.reason}: {verdict.message}"
            if stage == "signature" and verdict.signature is not None:
                detail += f" [found: {verdict.signature.describe()}]"
            out.append(StageOutcome(stage, REFUSED, detail, errors))
            reached = False
            continue
        out.append(StageOutcome(stage, OK, _ok_detail(stage, verdict)))
    return out


def _ok_detail(stage: str, verdict: Verdict) -> str:
    if stage == "parse":
        return f"well-formed edXML, {verdict.size:,} bytes"
    if stage == "schema":
        kind = verdict.package.kind if verdict.package else None
        return f"valid ({kind})" if kind else "valid"
    if stage == "signature" and verdict.signature is not None:
        flag = " (SHA-1, accepted as legacy)" if verdict.legacy_sha1 else ""
        if verdict.authenticated_by == "connection":
            flag = f"; sdk profile: accepted only over {verdict.connection_system}'s own connection"
        return verdict.signature.describe() + flag
    if stage == "trust" and verdict.authenticated_by == "connection":
        return "no certificate to check (authenticated by the connection)"
    if stage == "trust" and verdict.signer_fingerprint:
        return f"signer {verdict.signer_fingerprint[:16]}… pinned to {verdict.sender}"
    if stage == "authority" and verdict.accepted:
        return "recipients: " + (", ".join(r.recipient for r in verdict.routes) or "none")
    return ""
