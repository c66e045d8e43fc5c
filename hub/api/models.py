"""The API's request bodies as pydantic models: they validate the JSON a caller sends (a wrong
field becomes 400 ``usage.invalid`` naming it in ``element``) and give the OpenAPI document its
request schemas (``hub.api.openapi``). Domain rules a schema cannot say (a code is registered,
a PEM parses, a fingerprint is pinned) stay in the handlers.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

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


BODIES = (AgencyInput, AgencyPatch, AckRequest, StatusRequest, SettleRequest, UserInput, MaintenanceRequest,
          VdxpSystemInput)
