"""The registry as an immutable in-memory snapshot: what the checks consult.

Pure: built from rows by :mod:`hub.registry.store`, never touches the database itself.
About a hundred agencies run their own system (``connected``: an adapter and an inbox);
the rest of the national directory (~100,000 codes) is served by one of them, explicitly
(``served_by``) or by the nearest registered ancestor in the code hierarchy.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hub.errors import AuthorityError
from hub.registry.codes import ancestors

PROFILES = ("strict", "sdk")  # signature profiles an agency may have (README "Signature profiles")


@dataclass(frozen=True)
class Agency:
    code: str
    name: str = ""
    active: bool = True
    connected: bool = False
    served_by: str | None = None
    accepts: frozenset[str] | None = None  # DocumentType/Type codes; None = all
    fingerprints: frozenset[str] = frozenset()  # SHA-256 of pinned certificates
    amqp_user: str | None = None  # RabbitMQ user of its adapter (connected systems)
    profile: str = "strict"  # signatures: strict (XML-DSig, SHA-256+) | sdk (hub.pipeline.authentication)

    def accepts_type(self, doc_type: str) -> bool:
        return self.accepts is None or doc_type in self.accepts


@dataclass(frozen=True)
class Route:
    """Where a recipient's copy goes."""

    recipient: str  # the code named in To
    entry: Agency  # the registered agency that answers for it (itself or an ancestor)
    system: str  # the connected system whose inbox receives it


@dataclass
class Registry:
    """A snapshot of all agencies. Treat as immutable; reload to see changes."""

    agencies: dict[str, Agency] = field(default_factory=dict)
    version: int = 0

    def __post_init__(self) -> None:
        self._by_fp = {fp: a.code for a in self.agencies.values() for fp in a.fingerprints}
        self._by_user = {a.amqp_user or a.code: a.code for a in self.agencies.values() if a.connected}
        self._system_cache: dict[str, str | None] = {}

    def changed(self, upserts, removed, version: int) -> Registry:
        """A new snapshot with ``upserts`` (added or changed agencies) and without ``removed`` codes.

        The lookup indexes are updated for the agencies that changed, not rebuilt from all of them
        (a check process applies registry deltas this way, hub.pipeline.snapshot)."""
        agencies = dict(self.agencies)
        by_fp, by_user = dict(self._by_fp), dict(self._by_user)
        for code in [*removed, *(a.code for a in upserts)]:
            old = agencies.pop(code, None)
            if old is None:
                continue
            for fp in old.fingerprints:
                if by_fp.get(fp) == code:
                    del by_fp[fp]
            user = old.amqp_user or old.code
            if old.connected and by_user.get(user) == code:
                del by_user[user]
        for a in upserts:
            agencies[a.code] = a
        for a in upserts:
            by_fp.update(dict.fromkeys(a.fingerprints, a.code))
            if a.connected:
                by_user[a.amqp_user or a.code] = a.code
        new = Registry.__new__(Registry)
        new.agencies, new.version = agencies, version
        new._by_fp, new._by_user, new._system_cache = by_fp, by_user, {}
        return new

    def get(self, code: str) -> Agency | None:
        return self.agencies.get(code)

    def owner_of_fingerprint(self, fp: str) -> str | None:
        return self._by_fp.get(fp)

    def agency_for_user(self, user: str) -> str | None:
        """The connected system whose adapter connects to RabbitMQ as ``user``."""
        return self._by_user.get(user)

    def entry_for(self, code: str) -> Agency | None:
        """The registered agency that answers for ``code``: itself or its nearest registered ancestor."""
        a = self.agencies.get(code)
        if a is not None:
            return a
        for anc in ancestors(code):
            a = self.agencies.get(anc)
            if a is not None:
                return a
        return None

    def system_of(self, code: str) -> str | None:
        """The connected system that serves registered agency ``code`` (None if none does)."""
        if code in self._system_cache:
            return self._system_cache[code]
        seen: set[str] = set()
        cur: str | None = code
        result = None
        while cur is not None and cur not in seen:
            seen.add(cur)
            a = self.agencies.get(cur)
            if a is None:
                break
            if a.connected:
                result = a.code
                break
            if a.served_by:
                cur = a.served_by
                continue
            nxt = self.entry_for_parent(cur)
            cur = nxt.code if nxt else None
        self._system_cache[code] = result
        return result

    def entry_for_parent(self, code: str) -> Agency | None:
        for anc in ancestors(code):
            a = self.agencies.get(anc)
            if a is not None:
                return a
        return None

    def route(self, code: str) -> Route:
        """Resolve a recipient to its registered entry and serving system, or refuse."""
        entry = self.entry_for(code)
        if entry is None:
            raise AuthorityError(
                f"recipient {code} is not registered and no registered ancestor serves it; "
                "ask the hub operator to register it (`hub agency add` or `hub agency import`)",
                code="authority.recipient_unknown",
                element="MessageHeader/To/OrganId",
            )
        if not entry.active:
            raise AuthorityError(
                f"recipient {code} ({entry.code} {entry.name}) is retired and receives no documents",
                code="authority.recipient_inactive",
                element="MessageHeader/To/OrganId",
            )
        system = self.system_of(entry.code)
        if system is None or not self.agencies[system].active:
            raise AuthorityError(
                f"recipient {code} is registered but no active connected system serves it",
                code="authority.recipient_unknown",
                element="MessageHeader/To/OrganId",
            )
        return Route(code, entry, system)

    def systems(self) -> list[Agency]:
        return [a for a in self.agencies.values() if a.connected]
