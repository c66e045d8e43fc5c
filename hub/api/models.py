"""The API's request bodies, query parameters and path parameters as pydantic models: they
validate what a caller sends (a wrong field or parameter becomes 400 ``usage.invalid``, or the
reason a validator names such as ``usage.agency_code``, naming it in ``element``) and give the
OpenAPI document its request schemas and parameters (``hub.api.openapi``). Domain rules a schema
cannot say (a code is registered, a PEM parses, a fingerprint is pinned) stay in the handlers.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo, WithJsonSchema, \
    field_validator, model_validator
from pydantic_core import PydanticCustomError

from hub.audit.query import MAX_LIMIT, parse_time
from hub.errors import UsageError
from hub.registry import codes

CODE_PATTERN = r"^\d{3}\.\d{2}\.\d{2}\.[A-Z]\d{2}$"
MAX_IDS = 1000  # dead letters settled in one request


class Body(BaseModel):
    """A JSON object with exactly these fields, in JSON's own types (no coercion)."""

    model_config = ConfigDict(extra="forbid", strict=True)


Accepts = list[Annotated[str, Field(pattern=r"^[0-9]{1,3}$")]] | str | None
ACCEPTS = Field(None, description='DocumentType/Type codes the agency receives (a list, or comma-separated); '
                                  'null or "*" = every type')


PROFILE = Field(None, description="signatures: strict (XML-DSig, SHA-256+) or sdk (the national SDK's skeleton or no "
                                  "signature, accepted only over the agency's own authenticated connection)",
                json_schema_extra={"enum": ["strict", "sdk"]})


class AgencyInput(Body):
    model_config = ConfigDict(json_schema_extra={
        "example": {"code": "000.00.00.H77", "name": "UBND tỉnh H77", "accepts": ["1", "2"]}})

    code: str = Field(description="agency code NNN.NN.NN.Xnn", examples=["000.00.00.G22"])
    name: str | None = None
    certificates: list[str] | None = Field(None, description="signing certificates (PEM) to pin")
    accepts: Accepts = ACCEPTS
    served_by: str | None = Field(None, description="code of the agency whose system serves it")
    connected: bool | None = Field(None, description="own system (adapter, inbox); default: true unless served_by")
    amqp_user: str | None = Field(None, max_length=128)
    profile: str | None = PROFILE


class AgencyPatch(Body):
    """Absent fields stay; served_by null clears it."""

    model_config = ConfigDict(json_schema_extra={
        "minProperties": 1, "example": {"name": "Văn phòng Chính phủ", "accepts": None}})

    # defaults are never used (the handler reads only the fields sent), so none is documented
    name: str | None = None
    accepts: Accepts = ACCEPTS
    served_by: str | None = None
    connected: bool = None
    amqp_user: str | None = Field(None, max_length=128)
    add_certificates: list[str] = Field(None, description="PEM certificates to pin")
    retire_certificates: list[str] = Field(None, description="SHA-256 fingerprints to unpin")
    active: Literal[True] = Field(None, description="reactivate a retired agency")
    profile: str = PROFILE


class AckRequest(BaseModel):
    model_config = ConfigDict(strict=True, json_schema_extra={"example": {"ids": ["c2VlIHRoZSBpbmJveA"]}})

    ids: list[str] = Field(description="lease ids from GET /api/v1/inbox")


class StatusRequest(Body):
    """Either ``package``, or ``code`` (and ``reason``) for the gateway to sign with the key it holds."""

    model_config = ConfigDict(extra="ignore", json_schema_extra={"example": {"code": "01"}})

    code: Literal["01", "02", "03", "04", "05", "06", "13", "15", "16"] | None = None
    reason: str | None = Field(None, description="required for 02 (rejected)")
    package: str | None = Field(None, description="a status package signed by the caller, base64 "
                                                  "(instead of code/reason)", json_schema_extra={"format": "byte"})


class SettleRequest(Body):
    model_config = ConfigDict(json_schema_extra={"example": {"ids": [1]}})

    ids: list[int] = Field(min_length=1, max_length=MAX_IDS,
                           description="dead letter ids (unknown ones come back as skipped)")


class UserInput(Body):
    model_config = ConfigDict(json_schema_extra={"example": {"name": "auditor-2", "role": "auditor"}})

    name: str = Field(min_length=1, max_length=100)  # "<role>:<name>" fits records.actor (128)
    role: Literal["agency", "admin", "auditor"]
    agency: str | None = Field(None, description="for role agency: the agency it acts for",
                               examples=["000.00.00.G22"])


class MaintenanceRequest(Body):
    model_config = ConfigDict(json_schema_extra={"example": {"action": "resume"}})

    action: Literal["stop", "drain", "resume"] = Field(
        description="stop: take nothing new and stop consuming intake; drain: take nothing new, finish what is "
                    "queued; resume: back to normal")


class Query(BaseModel):
    """Query parameters: strings converted to the field's type; unknown parameters are ignored."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)


Limit = Annotated[int, Field(ge=1, le=1000, description="page size")]
Offset = Annotated[int, Field(ge=0, le=1_000_000_000, description="rows to skip")]


class AgencyQuery(Query):
    search: str | None = Field(None, max_length=200, description="part of the code or name")
    limit: Limit = 100
    offset: Offset = 0
    connected: bool | None = Field(None, description="true: only agencies with their own system; "
                                                     "false: only the others")


class DeadLetterQuery(Query):
    state: Literal["pending", "replayed", "discarded", "all"] = Field("pending", description="which")
    limit: Limit = 100
    offset: Offset = 0


class BlankIsAbsent(Query):
    """The audit API's queries: a parameter given empty (``?limit=``) is as if absent."""

    @model_validator(mode="before")
    @classmethod
    def _drop_blank(cls, data):
        return {k: v for k, v in data.items() if not (isinstance(v, str) and not v.strip())}


TreeSize = Annotated[int, Field(ge=1, le=2**62)]


class CheckpointQuery(BlankIsAbsent):
    limit: Limit = 20
    offset: Annotated[int, Field(ge=0, le=2**62, description="rows to skip")] = 0


class ConsistencyQuery(BlankIsAbsent):
    old: TreeSize = Field(description="an earlier checkpoint's tree size")
    new: TreeSize | None = Field(None, description="a later checkpoint's tree size (default: the latest)")


class VdxpSystemInput(Body):
    model_config = ConfigDict(json_schema_extra={"example": {"id": "vxp.saas.02", "agency": "000.00.00.H41"}})

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", description="the client's systemid")
    agency: str = Field(description="the agency it acts for (and those that agency serves)",
                        examples=["000.00.00.G22"])
    secret: str | None = Field(None, min_length=16, max_length=200,
                               description="the secret the client already has; omitted: the hub generates one")


# --- parameters --------------------------------------------------------------------------------

def _agency_code(value: str) -> str:
    if not codes.is_valid(value):
        raise PydanticCustomError("usage.agency_code", "agency code {value!r} is malformed: expected NNN.NN.NN.Xnn, "
                                  "e.g. 000.00.00.G22", {"value": value})
    return value


AgencyCode = Annotated[str, Field(max_length=64, description="agency code", examples=["000.00.00.G22"],
                                  json_schema_extra={"pattern": CODE_PATTERN}),
                       AfterValidator(_agency_code)]


def _time(value):
    """An ISO 8601 date or time (UTC when bare) as aware UTC (``hub.audit.query.parse_time``)."""
    if not isinstance(value, str):
        return value
    if len(value) > TIME_MAX:
        raise PydanticCustomError("usage.invalid", f"longer than {TIME_MAX} characters: not an ISO 8601 date or time")
    try:
        return parse_time(value)
    except UsageError as e:
        raise PydanticCustomError("usage.invalid", e.message.replace("time ", "", 1)) from None


TIME_MAX = 64  # "2026-11-27T08:30:00.123456+07:00" is 32
Time = Annotated[datetime | None, BeforeValidator(_time), WithJsonSchema({"type": "string", "maxLength": TIME_MAX})]


def _day(value):
    if isinstance(value, str):
        try:
            if len(value) == 10 and value.isascii():
                return date.fromisoformat(value)
        except ValueError:
            pass
        raise PydanticCustomError("usage.invalid", "{value!r} is not a date yyyy-mm-dd", {"value": value})
    return value


Day = Annotated[date | None, BeforeValidator(_day), Field(json_schema_extra={"format": "date"})]


class Path(BaseModel):
    """Path parameters (the router's ``match_info``), strings converted to the field's type."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class AgencyPath(Path):
    code: AgencyCode


class DocumentPath(Path):
    id: str = Field(min_length=1, max_length=255, description="the DocumentId, URL-encoded (it contains slashes)",
                    examples=["000.00.00.G22,2026/11/27,7816/VPCP-TTĐT"])


class BlobPath(Path):
    sha256: str = Field(pattern="^[0-9a-fA-F]{64}$", description="the blob's SHA-256 (the inbox entry's blob.sha256)")


class PackagePath(Path):
    sha256: str = Field(pattern="^[0-9a-fA-F]{64}$",
                        description="the package's SHA-256 (a document's sha256, a dead letter's package)")


class DeadLetterPath(Path):
    id: int = Field(description="dead letter id")


class UserPath(Path):
    id: str = Field(min_length=1, max_length=64, description="user id")


class VdxpSystemPath(Path):
    id: str = Field(min_length=1, max_length=64, description="system id")


class SenderQuery(BlankIsAbsent):
    sender: str | None = Field(None, max_length=64, description="the sender's code, when several senders used "
                                                                 "this DocumentId")


class InboxQuery(Query):
    limit: int = Field(20, ge=1, le=100, description="at most this many")


class AuthReportQuery(BlankIsAbsent):
    """Unknown parameters are refused."""

    model_config = ConfigDict(extra="forbid")

    since: Time = Field(None, description="ISO 8601 date or time (UTC if no offset); default: the beginning")
    until: Time = Field(None, description="ISO 8601, exclusive; default: now")
    agency: AgencyCode | None = Field(None, description="only this sender")


class FollowupQuery(BlankIsAbsent):
    agency: str | None = Field(None, max_length=200, description="recipient: code, or name (accents and case ignored)")
    sender: str | None = Field(None, max_length=200, description="sender: code, or name (accents and case ignored)")
    from_: Day = Field(None, alias="from", description="received on or after (Vietnam date)")
    to: Day = Field(None, description="received on or before (Vietnam date)")
    type: str | None = Field(None, max_length=8, description="DocumentType/Type")
    priority: int | None = Field(None, ge=0, le=4, description="0 normal … 4 express at a set time")


OVERDUE_LIMIT = 1000  # copies in one answer of the overdue list unless ``limit`` says otherwise


class OverdueQuery(FollowupQuery):
    days: int = Field(3, ge=0, le=365, description="also those due within")
    limit: int = Field(OVERDUE_LIMIT, ge=1, le=5000, description="copies in this answer (the most overdue first)")
    after: str | None = Field(None, pattern=r"^\d{4}-\d{2}-\d{2}\.\d{1,18}$", max_length=40,
                              description="the `next` of the previous answer: the copies after it")


JSON_LIMIT = 1000  # audit entries in one JSON page; an export (CSV) takes up to MAX_LIMIT


class AuditEntriesQuery(BlankIsAbsent):
    """Unknown parameters are refused."""

    model_config = ConfigDict(extra="forbid")

    document_id: str | None = Field(None, max_length=255, description="exact, or a prefix ending in * or .")
    sender: str | None = Field(None, max_length=64, description="agency code")
    recipient: str | None = Field(None, max_length=64, description="agency code")
    type: str | None = Field(None, max_length=8, description="DocumentType/Type")
    doc_type: str | None = Field(None, max_length=8, description="the same as type")
    event: str | None = Field(None, max_length=128, description="event name, or a prefix ending in . or *")
    reason: str | None = Field(None, max_length=64, description="reason code, or a prefix")
    since: Time = Field(None, description="ISO 8601 date or time (UTC when bare)", examples=["2026-11-27T00:00:00Z"])
    until: Time = Field(None, description="ISO 8601 date or time", examples=["2026-11-28"])
    format: Literal["json", "csv"] = Field("json", description="csv: an export, itself recorded as audit.exported")
    limit: int = Field(50, ge=0, le=MAX_LIMIT, description=f"at most {JSON_LIMIT} (JSON) or {MAX_LIMIT} (CSV) entries")
    offset: int = Field(0, ge=0, le=2**62, description="entries to skip")

    @field_validator("limit")
    @classmethod
    def _page(cls, value: int, info: ValidationInfo) -> int:
        if info.data.get("format", "json") == "json" and value > JSON_LIMIT:
            raise PydanticCustomError("usage.invalid", "must be a whole number from 0 to {hi} (JSON; up to {csv} "
                                      "with format=csv)", {"hi": JSON_LIMIT, "csv": MAX_LIMIT})
        return value


BODIES = (AgencyInput, AgencyPatch, AckRequest, StatusRequest, SettleRequest, UserInput, MaintenanceRequest,
          VdxpSystemInput)
