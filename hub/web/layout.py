"""The HTML shell of the admin dashboard: escaping, the page frame, small building blocks.

Everything is inline (CSS here, charts as SVG from ``hub.web.svg``): no external asset, no
JavaScript. Every piece of data that reaches a page goes through :func:`esc` (text and
attribute values) or :func:`url_path`/:func:`url_query` (links).
"""

from __future__ import annotations

import html
from datetime import datetime, timezone
from urllib.parse import quote, urlencode

CSS = """
:root{--bg:#f2f4f7;--card:#fff;--ink:#1d2733;--muted:#5f6b7a;--line:#e2e6eb;--brand:#0d3b66;--brand2:#15508a;
--accent:#1f6fb2;--ok:#2f855a;--okbg:#e6f4ea;--bad:#c53030;--badbg:#fdecec;--warn:#b7791f;--warnbg:#fdf6e3}
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%}
body{margin:0;background:var(--bg);color:var(--ink);
font:14px/1.5 "Segoe UI","Noto Sans","DejaVu Sans",Roboto,"Helvetica Neue",Arial,sans-serif}
a{color:var(--accent);text-decoration:none}a:hover{text-decoration:underline}
code,.mono{font-family:"DejaVu Sans Mono",Menlo,Consolas,monospace;font-size:12.5px}
.nav{background:var(--brand);color:#fff;display:flex;align-items:center;gap:28px;padding:0 28px;height:56px}
.brand{display:flex;flex-direction:column;line-height:1.15;color:#fff;white-space:nowrap}
.brand b{font-size:16px;letter-spacing:.2px}.brand small{color:#b9cde3;font-size:11.5px}
.nav ul{display:flex;gap:4px;list-style:none;margin:0;padding:0}
.nav ul a{color:#dce8f5;padding:7px 12px;border-radius:6px;display:block}
.nav ul a:hover{background:var(--brand2);text-decoration:none}
.nav ul a.on{background:#fff;color:var(--brand);font-weight:600}
.nav .find{margin-left:auto;display:flex;gap:6px}
.nav .find input{width:230px;border:0;border-radius:6px;padding:7px 10px;font:inherit}
.nav .who{display:flex;align-items:center;gap:10px;white-space:nowrap;color:#dce8f5}
.nav .who form{margin:0}
.role{display:inline-block;font-size:11px;font-weight:600;text-transform:uppercase;letter-spacing:.5px;
padding:2px 8px;border-radius:10px;background:#e8eef6;color:var(--brand)}
.nav .role{background:#2b6cb0;color:#fff}
button,.btn{font:inherit;border:1px solid #c3ccd6;background:#fff;color:var(--ink);border-radius:6px;
padding:6px 14px;cursor:pointer}
button:hover{background:#f4f6f8}
button.primary{background:var(--accent);border-color:var(--accent);color:#fff}
button.primary:hover{background:#185c96}
button.danger{color:var(--bad);border-color:#e3a6a6}
.nav button{background:transparent;color:#dce8f5;border-color:#4d7399;padding:4px 10px}
.nav button:hover{background:var(--brand2)}
main{max-width:1280px;margin:0 auto;padding:24px 28px 48px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:15px;margin:0 0 12px}
.sub{color:var(--muted);margin:0 0 20px}
.muted{color:var(--muted)}.small{font-size:12px}
.grid{display:grid;gap:18px}.g5{grid-template-columns:repeat(5,1fr)}.g2{grid-template-columns:1fr 1fr}
.g3{grid-template-columns:repeat(3,1fr)}
@media (max-width:900px){.g5,.g2,.g3{grid-template-columns:1fr}}
.card{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:18px 20px;min-width:0}
main>.card+.card,main>.grid+.card,main>.card+.grid,main>.grid+.grid{margin-top:18px}
.big{font-size:30px;font-weight:700;line-height:1.2;font-variant-numeric:tabular-nums}
.card h2 .muted{font-weight:400;font-size:12.5px}
.stat{border-top:4px solid var(--accent)}
.stat .label{color:var(--muted);font-size:12.5px;text-transform:uppercase;letter-spacing:.6px}
.stat .num{font-size:30px;font-weight:700;line-height:1.2;margin-top:4px;font-variant-numeric:tabular-nums}
.stat.ok{border-top-color:var(--ok)}.stat.bad{border-top-color:var(--bad)}.stat.warn{border-top-color:var(--warn)}
.stat.dup{border-top-color:#805ad5}
table{width:100%;border-collapse:collapse}
th,td{text-align:left;padding:7px 10px;border-bottom:1px solid var(--line);vertical-align:top}
th{font-size:12px;text-transform:uppercase;letter-spacing:.5px;color:var(--muted);font-weight:600;background:#f8f9fb}
tr:last-child td{border-bottom:0}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.nowrap{white-space:nowrap}
.tablewrap{overflow-x:auto}
.bar{background:#edf1f5;border-radius:4px;height:10px;min-width:120px;overflow:hidden}
.bar i{display:block;height:100%;background:var(--accent);border-radius:4px}
.bar i.hot{background:var(--bad)}
.badge{display:inline-block;padding:2px 9px;border-radius:10px;font-size:12px;font-weight:600}
.b-ok{background:var(--okbg);color:var(--ok)}.b-bad{background:var(--badbg);color:var(--bad)}
.b-warn{background:var(--warnbg);color:var(--warn)}.b-muted{background:#eef0f3;color:var(--muted)}
.exp-bad{color:var(--bad);font-weight:600}.exp-ok{color:var(--ok)}
.reason code{background:#eef2f7;padding:1px 6px;border-radius:4px}
.reason .meaning{display:block;color:var(--muted);font-size:12px}
.flash{border-radius:8px;padding:12px 16px;margin:0 0 18px;border:1px solid}
.flash.ok{background:var(--okbg);border-color:#b7dfc3;color:#22543d}
.flash.error{background:var(--badbg);border-color:#f0b8b8;color:#822727}
.flash b{display:block}
.kv{display:grid;grid-template-columns:max-content 1fr;gap:6px 16px;margin:0}
.kv dt{color:var(--muted)}.kv dd{margin:0;min-width:0;overflow-wrap:anywhere}
.toolbar{display:flex;gap:10px;align-items:center;flex-wrap:wrap;margin-bottom:14px}
.toolbar input[type=search],.toolbar input[type=text]{font:inherit;padding:6px 10px;border:1px solid #c3ccd6;
border-radius:6px;width:320px}
.pager{display:flex;gap:12px;align-items:center;justify-content:flex-end;margin-top:12px}
.tabs{display:flex;gap:6px;margin-bottom:14px}
.tabs a{padding:5px 12px;border-radius:14px;background:#e8edf3;color:var(--ink)}
.tabs a.on{background:var(--brand);color:#fff}
.chart svg{display:block;width:100%;height:auto}
.empty{color:var(--muted);padding:18px 0;text-align:center}
.timeline td .delta{color:var(--muted);font-size:12px}
.login{max-width:440px;margin:9vh auto;padding:0 16px}
.login .card{padding:28px 30px}
.login h1{font-size:20px}.login label{display:block;font-weight:600;margin:14px 0 6px}
.login input[type=password]{width:100%;font:inherit;padding:9px 11px;border:1px solid #c3ccd6;border-radius:6px}
.login button{margin-top:16px;width:100%;padding:9px}
.footer{color:var(--muted);font-size:12px;text-align:center;margin-top:28px}
"""

NAV = (
    ("overview", "/admin", "Overview"),
    ("agencies", "/admin/agencies", "Agencies"),
    ("dead", "/admin/dead-letters", "Dead letters"),
    ("documents", "/admin/documents", "Documents"),
    ("vdxp", "/admin/vdxp", "VDXP systems"),
)


def esc(value) -> str:
    """Text or attribute value, HTML-escaped (quotes included); None becomes empty."""
    return "" if value is None else html.escape(str(value), quote=True)


def url_path(*segments: str) -> str:
    """``/admin/...`` with each segment percent-encoded (slashes inside a segment too)."""
    return "/" + "/".join(quote(str(s), safe="") for s in segments)


def url_query(path: str, **params) -> str:
    items = {k: v for k, v in params.items() if v not in (None, "")}
    return path + ("?" + urlencode(items) if items else "")


def utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def fmt_time(value: datetime | None, seconds: bool = True) -> str:
    v = utc(value)
    if v is None:
        return "—"
    return v.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def fmt_int(n) -> str:
    return "—" if n is None else f"{n:,}".replace(",", "\u202f")


def fmt_size(n: int | None) -> str:
    if n is None:
        return "—"
    for unit in ("B", "KiB", "MiB"):
        if n < 1024 or unit == "MiB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def fmt_duration(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, s = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {s} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min"
    return f"{hours // 24} d {hours % 24} h"


def truncate(text: str | None, n: int) -> str:
    t = text or ""
    return t if len(t) <= n else t[: n - 1] + "…"


def flash_box(kind: str, title: str, detail: str | None = None) -> str:
    cls = "ok" if kind == "ok" else "error"
    body = f"<b>{esc(title)}</b>" + (f"<span>{esc(detail)}</span>" if detail else "")
    return f'<div class="flash {cls}" role="{"status" if cls == "ok" else "alert"}">{body}</div>'


def reason_cell(code: str | None, meaning: str | None) -> str:
    if not code:
        return '<span class="muted">—</span>'
    m = f'<span class="meaning">{esc(meaning)}</span>' if meaning else ""
    return f'<span class="reason" title="{esc(meaning or code)}"><code>{esc(code)}</code>{m}</span>'


def page(title: str, body: str, *, user=None, active: str = "", csrf: str = "", flash: str = "",
         organ_id: str = "") -> str:
    """A full page: head with inline CSS, the nav bar (when signed in), flash messages, body."""
    nav = ""
    if user is not None:
        links = "".join(
            f'<li><a href="{esc(href)}"{" class=on" if key == active else ""}>{esc(label)}</a></li>'
            for key, href, label in NAV)
        nav = (
            '<header class="nav">'
            '<a class="brand" href="/admin"><b>edXML Hub</b><small>Trục liên thông văn bản · quản trị</small></a>'
            f"<nav><ul>{links}</ul></nav>"
            '<form class="find" method="get" action="/admin/documents">'
            '<input type="search" name="id" placeholder="Find a DocumentId…" aria-label="Find a document by DocumentId">'
            "</form>"
            f'<div class="who"><span>{esc(user.name)}</span><span class="role">{esc(user.role)}</span>'
            '<form method="post" action="/admin/logout">'
            f'<input type="hidden" name="csrf" value="{esc(csrf)}"><button type="submit">Sign out</button></form>'
            "</div></header>"
        )
    footer = (f'<p class="footer">Hub {esc(organ_id)} · times in UTC</p>' if organ_id else "")
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        '<link rel="icon" href="data:,">'
        f"<title>{esc(title)} · edXML Hub</title><style>{CSS}</style></head>"
        f"<body>{nav}<main>{flash}{body}{footer}</main></body></html>"
    )
