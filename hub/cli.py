"""The ``hub`` command: a thin layer over the factories in :mod:`hub.context`.

Exit codes: 0 success (``check``: all accepted), 1 refused / failed, 2 usage error or
something named that does not exist (see :mod:`hub.cli_errors`). Every option's help names its
default and the ``HUB_*`` variable that sets it, if any.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from hub.cli_io import err, out, read
from hub.errors import UsageError
from hub.settings import Settings


# --- sign / check -------------------------------------------------------------------------

async def cmd_sign(args, settings: Settings) -> int:
    from hub.edxml.signature import sign_package
    from hub.errors import HubError
    from hub.pki.identity import load_signing_pair

    key, certs = load_signing_pair(args.key, args.cert)  # checks the key is the certificate's
    data = read(args.input, "package")
    try:
        signed = sign_package(data, key, certs[0], certs[1:])
    except HubError as e:
        raise UsageError(f"cannot sign {args.input}: {e.code}: {e.message}") from None
    except Exception as e:  # noqa: BLE001 - signxml/cryptography: name the cause, not a traceback
        raise UsageError(f"cannot sign {args.input} with {args.key}: {type(e).__name__}: {e}") from None
    try:
        Path(args.output).write_bytes(signed)
    except OSError as e:
        raise UsageError(f"cannot write {args.output}: {e.strerror}") from None
    out(f"signed {args.input} -> {args.output} ({len(signed):,} bytes)")
    return 0


async def cmd_check(args, settings: Settings) -> int:
    from hub.audit.query import parse_time
    from hub.context import load_check_context, open_engine
    from hub.pipeline.checks import check_package
    from hub.pipeline.explain import explain_stages

    at = parse_time(args.at, "--at")
    async with open_engine(settings) as engine:
        ctx = await load_check_context(engine, settings)
    refused = 0
    for name in args.files:
        try:
            data = Path(name).read_bytes()
        except OSError as e:
            raise UsageError(f"cannot read {name}: {e.strerror}") from e
        verdict = check_package(data, ctx, at=at)
        refused += not verdict.accepted
        stages = explain_stages(data, verdict, ctx.validator) if args.explain else []
        if args.json:
            d = verdict.as_dict(name)
            if stages:
                d["stages"] = [st.as_dict() for st in stages]
            out(json.dumps(d, ensure_ascii=False))
        else:
            out(verdict.line(name))
            for st in stages:
                for line in st.lines():
                    out(line)
    return 1 if refused else 0


# --- users --------------------------------------------------------------------------------

async def cmd_user_add(args, settings: Settings) -> int:
    from hub.api.users import add_user
    from hub.context import open_engine

    async with open_engine(settings) as engine:
        token = await add_user(engine, args.name, args.role, args.agency, actor="cli")
    of = f" of {args.agency}" if args.agency else ""
    out(f'user "{args.name}" ({args.role}{of}) created.')
    out("token (shown once, stored hashed; give it to the user over a safe channel):")
    out(token)
    return 0


async def cmd_user_revoke(args, settings: Settings) -> int:
    from hub.api.users import revoke_user
    from hub.context import open_engine

    async with open_engine(settings) as engine:
        await revoke_user(engine, args.id, actor="cli")
    out(f"revoked user {args.id}: its token no longer works")
    return 0


async def cmd_user_list(args, settings: Settings) -> int:
    from hub.api.users import list_users
    from hub.context import open_engine

    async with open_engine(settings) as engine:
        rows = await list_users(engine)
    out(f"{'ID':<14} {'NAME':<24} {'ROLE':<8} {'AGENCY':<14} {'STATE':<8} LAST USED")
    for r in rows:
        state = "revoked" if r["revoked_at"] else "active"
        out(f"{r['id']:<14} {r['name']:<24} {r['role']:<8} {r['agency'] or '-':<14} {state:<8} {r['last_used_at'] or '-'}")
    return 0


# --- parser -------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="hub", description="edXML (QCVN 102:2016) inter-agency document interchange hub",
        epilog="Settings come from HUB_* environment variables (README: Settings). Exit codes: 0 success, "
               "1 refused or failed, 2 usage error or not found. HUB_DEBUG=1 shows tracebacks.")
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND")

    from hub import cli_registry

    cli_registry.register(sub)

    x = sub.add_parser("sign", help="sign a package (enveloped XML-DSig, RSA/ECDSA-SHA256)")
    x.add_argument("input", help="the package to sign (an existing signature is replaced)")
    x.add_argument("--key", required=True, help="the signing key, unencrypted PEM")
    x.add_argument("--cert", required=True, help="PEM: the signing certificate, then any intermediates")
    x.add_argument("-o", "--output", required=True, help="where to write the signed package")
    x.set_defaults(func=cmd_sign)

    x = sub.add_parser("check", help="run every stateless check offline: exit 0 all accepted, 1 any refused")
    x.add_argument("files", nargs="+", help="packages to check")
    x.add_argument("--json", action="store_true", help="one JSON object per file")
    x.add_argument("--at", metavar="TIME", help="validate certificates at this ISO 8601 time (default: now)")
    x.add_argument("--explain", action="store_true",
                   help="show each stage's outcome (parse, schema, signature, trust, authority) and every schema "
                        "error (slower)")
    x.set_defaults(func=cmd_check)

    us = sub.add_parser("user", help="API users and their bearer tokens").add_subparsers(dest="sub", required=True,
                                                                                        metavar="VERB")
    x = us.add_parser("add", help="create a user; prints its token once")
    x.add_argument("name", help="a name no active user has")
    x.add_argument("--role", required=True, choices=["agency", "admin", "auditor"], help="what the user may do")
    x.add_argument("--agency", metavar="CODE", help="for role agency: the agency it acts for (default: none)")
    x.set_defaults(func=cmd_user_add)
    x = us.add_parser("revoke", help="revoke a user's token")
    x.add_argument("id", help="the user's ID, as `hub user list` shows it")
    x.set_defaults(func=cmd_user_revoke)
    x = us.add_parser("list", help="list users (never their tokens)")
    x.set_defaults(func=cmd_user_list)

    _add_later_commands(sub)
    return p


def _add_later_commands(sub) -> None:
    """Commands of the backbone (serve, demo, send, inbox, status, bench) register here."""
    try:
        from hub import cli_backbone
    except ImportError:
        return
    cli_backbone.register(sub)
    from hub import cli_audit
    cli_audit.register(sub)
    from hub import cli_vdxp
    cli_vdxp.register(sub)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0)
    settings = None
    try:
        settings = Settings.from_env()
        return asyncio.run(args.func(args, settings))
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # noqa: BLE001 - every failure becomes one line (hub.cli_errors)
        from hub.cli_errors import debug_trace, explain

        message, rc = explain(e, args, settings)
        trace = debug_trace(e)
        if trace:
            print(trace, file=sys.stderr, end="")
        err(message)
        return rc


if __name__ == "__main__":
    sys.exit(main())
