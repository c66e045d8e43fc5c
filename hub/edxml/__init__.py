"""edXML packages: parse (hardened), read, build, sign, verify, validate, relay-trace.

``parser`` is the one entry point for untrusted XML; ``model`` (with ``business`` and
``document_id``) is the typed read model; ``builder`` writes packages; ``signature`` signs and
verifies XML-DSig (``dsig_fast`` is its fast path, ``sdk_signature`` recognises the national
SDK's signature); ``schema`` and ``structure`` validate; ``trace`` adds and strips the hub's
TraceHeader; ``paths`` names elements in messages. No database, broker or network; the only
I/O is ``schema`` reading the XSD files once (``schemas/v1`` or ``HUB_SCHEMA_DIR``).
"""
