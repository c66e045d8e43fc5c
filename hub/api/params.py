"""Raw (non-JSON) request bodies the handlers share in their declarations. Parameters are not
declared here: each endpoint's path and query models (``hub.api.models``) declare them."""

from __future__ import annotations

PEM_BODY = {"description": "PEM (the media type is not checked)", "required": True,
            "content": {"application/x-pem-file": {"schema": {"type": "string"}},
                        "text/plain": {"schema": {"type": "string"}}}}
