"""Per-agency broker users: each ministry's adapter connects as its own user.

An agency user may publish to ``edxml.submit`` and read its own two inbox queues, nothing
else: ``configure="^$"`` (no declares; passive declares need no permission),
``write="^edxml\\.submit$"``, ``read="^inbox\\.<code>(\\.urgent)?$"``. RabbitMQ also checks
the ``user_id`` property of what it publishes against the user, which is how the hub knows
which adapter sent a package.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from hub.backbone.embedded import EmbeddedBroker
from hub.backbone.management import Management
from hub.constants import EXCHANGE_SUBMIT, INBOX_PREFIX, URGENT_SUFFIX


@dataclass(frozen=True)
class AgencyPermissions:
    """RabbitMQ permission regexes (configure, write, read) for one agency."""

    configure: str
    write: str
    read: str


def agency_permissions(code: str) -> AgencyPermissions:
    """The permissions of the user of agency ``code``."""
    return AgencyPermissions(
        configure="^$",
        write=f"^{re.escape(EXCHANGE_SUBMIT)}$",
        read=f"^{re.escape(INBOX_PREFIX + code)}({re.escape(URGENT_SUFFIX)})?$",
    )


async def provision_agency_user(management_url: str, admin_user: str, admin_password: str, user: str,
                                password: str, code: str, vhost: str = "/") -> AgencyPermissions:
    """Create or update the RabbitMQ user of agency ``code`` (no tags) and set its permissions."""
    perms = agency_permissions(code)
    async with Management(management_url, admin_user, admin_password) as m:
        await m.put_user(user, password, tags="")
        await m.set_permissions(vhost, user, configure=perms.configure, write=perms.write, read=perms.read)
    return perms


async def delete_user(management_url: str, admin_user: str, admin_password: str, user: str) -> None:
    """Delete a RabbitMQ user (and so its permissions); a missing user is not an error."""
    async with Management(management_url, admin_user, admin_password) as m:
        await m.delete_user(user)


def provision_embedded_agency_user(broker: EmbeddedBroker, user: str, code: str) -> AgencyPermissions:
    """The same permissions on the embedded broker (which trusts the user name it is given)."""
    perms = agency_permissions(code)
    broker.set_permissions(user, configure=perms.configure, write=perms.write, read=perms.read)
    return perms
