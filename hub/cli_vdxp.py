"""``hub vdxp add|list|revoke``: the systems that speak the national axis's protocol (/vdxp/)."""

from __future__ import annotations

import json

from hub.settings import Settings


async def cmd_add(args, settings: Settings) -> int:
    from hub.context import open_engine
    from hub.vdxp.keys import SecretBox
    from hub.vdxp.systems import add_system

    box = SecretBox.load(settings.vdxp_key, create=True)
    async with open_engine(settings) as engine:
        secret = await add_system(engine, box, args.system_id, args.agency, args.secret, actor="cli")
    print(f"VDXP system {args.system_id} acts for {args.agency} and the agencies it serves.")
    if args.secret is None:
        print("secret (shown once, kept encrypted; put it in the client's `secret` setting over a safe channel):")
        print(secret)
    print("client settings: service.endpoint=http(s)://<this hub>:<port>/vdxp  "
          f"systemid={args.system_id}  secret=<the secret>")
    return 0


async def cmd_list(args, settings: Settings) -> int:
    from hub.context import open_engine
    from hub.vdxp.systems import list_systems

    async with open_engine(settings) as engine:
        rows = await list_systems(engine)
    if args.json:
        print(json.dumps([{k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in r.items()} for r in rows],
                         ensure_ascii=False, indent=1))
        return 0
    print(f"{'SYSTEM':<24} {'AGENCY':<14} {'STATE':<8} CREATED")
    for r in rows:
        print(f"{r['id']:<24} {r['agency']:<14} {'revoked' if r['revoked_at'] else 'active':<8} "
              f"{r['created_at']:%Y-%m-%d %H:%M} by {r['created_by'] or '-'}")
    return 0


async def cmd_revoke(args, settings: Settings) -> int:
    from hub.context import open_engine
    from hub.vdxp.systems import revoke_system

    async with open_engine(settings) as engine:
        await revoke_system(engine, args.system_id, actor="cli")
    print(f"revoked {args.system_id}: its requests are refused from now on (vdxp.unknown_system)")
    return 0


def register(sub) -> None:
    vd = sub.add_parser("vdxp", help="systems speaking the national axis's HTTP protocol at /vdxp/").add_subparsers(
        dest="sub", required=True, metavar="VERB")
    x = vd.add_parser("add", help="register a system; prints its secret once when the hub generates it")
    x.add_argument("system_id", metavar="SYSTEM_ID", help="the client's `systemid`, e.g. 000.00.00.H41 or vxp.saas.02")
    x.add_argument("--agency", required=True, metavar="CODE", help="the agency it acts for (with those it serves)")
    x.add_argument("--secret", help="the secret the client already has (default: generate one)")
    x.set_defaults(func=cmd_add)
    x = vd.add_parser("list", help="list systems (never their secrets)")
    x.add_argument("--json", action="store_true", help="JSON, times in ISO 8601")
    x.set_defaults(func=cmd_list)
    x = vd.add_parser("revoke", help="revoke a system: its requests are refused from now on")
    x.add_argument("system_id", metavar="SYSTEM_ID", help="the system to revoke")
    x.set_defaults(func=cmd_revoke)
