"""The console's small parts: escaping, safe redirects, CSRF tokens, chart scales and SVG."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import aiohttp_jinja2
from aiohttp import web

from hub.web import auth, i18n
from hub.web.links import url_path
from hub.web.render import setup_templates
from hub.web.svg import Bar, Slot, esc, hbar_chart, nice_scale, stacked_columns

HOSTILE = '<script>alert("x")</script>&\''


def test_escaping_and_links():
    assert esc(HOSTILE) == "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#x27;"
    assert esc(None) == ""
    assert url_path("admin", "documents", "000.00.00.G22,2026/11/27,1/VPCP-TTĐT") == \
        "/admin/documents/000.00.00.G22%2C2026%2F11%2F27%2C1%2FVPCP-TT%C4%90T"
    app = web.Application()
    setup_templates(app)
    i18n.set_language("vi")
    html = aiohttp_jinja2.get_env(app).get_template("message.html").render(
        title=HOSTILE, heading=HOSTILE, box={"kind": "error", "title": HOSTILE, "detail": HOSTILE}, user=None,
        flashes=[], organ_id=HOSTILE, active="", path="/", refresh=None, can_refresh=False, lang="vi", now=None)
    assert "<script>" not in html and '<meta charset="utf-8">' in html  # autoescaped everywhere
    assert html.count("&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&amp;&#39;") == 5


def test_safe_next_stays_on_the_dashboard():
    for bad in (None, "", "https://evil.example/admin", "//evil.example", "/admin//evil", "/api/v1/inbox",
                "/admin\\@evil", "/administrator", "/admin/login?next=/x", "/admin/\r\nSet-Cookie: x=1"):
        assert auth.safe_next(bad) == "/admin", bad
    assert auth.safe_next("/admin/agencies?q=H4&page=2") == "/admin/agencies?q=H4&page=2"
    assert auth.safe_next("/admin/documents/a%2Fb") == "/admin/documents/a%2Fb"
    assert auth.safe_next("/admin/agencies?q=Nghệ An") == "/admin/agencies?q=Ngh%E1%BB%87%20An"


def test_csrf_tokens_bind_to_their_key_secret_and_purpose():
    token = "hub_0123456789ab_secret"
    key, other_key = b"k" * 32, b"o" * 32
    t = auth.csrf_for(key, token)
    assert auth.csrf_ok(key, token, t)
    assert not auth.csrf_ok(key, token, t[:-1] + ("0" if t[-1] != "0" else "1"))
    assert not auth.csrf_ok(key, "hub_0123456789ab_other", t)
    assert not auth.csrf_ok(key, token, auth.csrf_for(key, token, "login"))
    assert not auth.csrf_ok(other_key, token, t)  # another hub's key
    assert not auth.csrf_ok(key, token, None) and not auth.csrf_ok(key, None, t) and not auth.csrf_ok(key, token, "")
    assert auth.well_formed(token) and not auth.well_formed("hub_x") and not auth.well_formed("a b")


def test_nice_scale_and_formats():
    assert nice_scale(0) == (1.0, 1.0)
    assert nice_scale(1) == (1.0, 1.0)
    assert nice_scale(16) == (20.0, 5.0)
    assert nice_scale(7) == (8.0, 2.0)
    assert nice_scale(1234) == (1500.0, 500.0)
    i18n.set_language("en")
    assert i18n.fmt_size(8) == "8 B" and i18n.fmt_size(4096) == "4 KiB" and i18n.fmt_size(3 * 1024 * 1024) == "3 MiB"
    assert i18n.fmt_duration(0.012) == "12 ms" and i18n.fmt_duration(3.25) == "3.2 s"
    assert i18n.fmt_duration(125) == "2 min 5 s"
    i18n.set_language("vi")
    assert i18n.fmt_duration(3.25) == "3,2 giây" and i18n.fmt_duration(125) == "2 phút 5 giây"
    assert i18n.fmt_duration(3 * 86400 + 4 * 3600) == "3 ngày 4 giờ" and i18n.fmt_size(1536) == "1,5 KiB"


def test_charts_are_well_formed_svg_with_escaped_labels():
    svg = hbar_chart([Bar(HOSTILE, 3, HOSTILE), Bar("parse.not_xml", 1, "the bytes are not well-formed XML")],
                     label="refusals")
    root = ET.fromstring(svg)  # well-formed XML: every label escaped
    assert root.tag.endswith("svg") and "<script>" not in svg
    assert len(root.findall("{http://www.w3.org/2000/svg}g")) == 2
    slots = [Slot("12:00" if i % 10 == 0 else "", f"{i} <b>", (i, 1)) for i in range(60)]
    svg = stacked_columns(slots, series=(("accepted", "#2f855a"), ("refused", "#c53030")), label="per minute",
                          label_every=1)
    root = ET.fromstring(svg)
    texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert texts.count("12:00") == 6 and "accepted" in texts and "refused" in texts
    empty = stacked_columns([Slot("", "x", (0, 0))], series=(("a", "#000"),), label="e", empty="no packages")
    assert "no packages" in empty
    assert "nothing here" in hbar_chart([], label="none", empty="nothing here")
