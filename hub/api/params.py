"""OpenAPI parameters and raw (non-JSON) request bodies the handlers share in their declarations."""

from __future__ import annotations

STR = {"type": "string"}
CODE = {"type": "string", "pattern": r"^\d{3}\.\d{2}\.\d{2}\.[A-Z]\d{2}$", "example": "000.00.00.G22"}


def q(name: str, schema: dict, description: str) -> dict:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


def p(name: str, schema: dict, description: str) -> dict:
    return {"name": name, "in": "path", "required": True, "schema": schema, "description": description}


FOLLOWUP_FILTERS = [
    q("agency", {"type": "string", "maxLength": 200}, "recipient: code, or name (accents and case ignored)"),
    q("sender", {"type": "string", "maxLength": 200}, "sender: code, or name (accents and case ignored)"),
    q("from", {"type": "string", "format": "date"}, "received on or after (Vietnam date)"),
    q("to", {"type": "string", "format": "date"}, "received on or before (Vietnam date)"),
    q("type", {"type": "string", "maxLength": 8}, "DocumentType/Type"),
    q("priority", {"type": "integer", "minimum": 0, "maximum": 4}, "0 normal … 4 express at a set time"),
]


PEM_BODY = {"description": "PEM (the media type is not checked)", "required": True,
            "content": {"application/x-pem-file": {"schema": {"type": "string"}},
                        "text/plain": {"schema": {"type": "string"}}}}
DOC_ID = {**p("id", {"type": "string"}, "the DocumentId, URL-encoded (it contains slashes)"),
          "example": "000.00.00.G22,2026/11/27,7816/VPCP-TTĐT"}
SENDER = q("sender", {"type": "string"}, "the sender's code, when several senders used this DocumentId")
CODE_P = p("code", CODE, "agency code")
