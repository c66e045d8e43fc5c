"""The console's words and formats: Vietnamese first, English on request, Vietnam time.

- Every operator-facing string is an English msgid looked up in the ``messages`` catalog
  (``hub/web/locale/<lang>/LC_MESSAGES/messages.po``, Babel/gettext). The .po file is compiled
  in memory when first used (Babel's ``write_mo``), so a fresh install needs no build step;
  ``pybabel extract -F hub/web/babel.cfg`` and ``pybabel update`` keep it in step with the
  code and templates (``tests/web/test_i18n.py`` fails when a string has no translation).
- The language of the current request lives in a context variable set by the page wrapper.
- Times are shown in Vietnam time (Asia/Ho_Chi_Minh) as dd/MM/yyyy HH:mm, numbers with the
  language's separators (1.234.567 in Vietnamese), priorities, statuses, document types and
  reason-code meanings by name.
"""

from __future__ import annotations

import contextvars
import gettext as _gettext
import io
from datetime import date, datetime, timedelta
from functools import cache
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel import Locale
from babel.numbers import format_decimal, get_group_symbol

from hub.errors import REASONS
from hub.followup.rules import VN, aware

LANGUAGES = ("vi", "en")
DEFAULT = "vi"
LOCALE_DIR = Path(__file__).with_name("locale")
_lang: contextvars.ContextVar[str] = contextvars.ContextVar("hub_web_lang", default=DEFAULT)


@cache
def translations(lang: str) -> _gettext.NullTranslations:
    po = LOCALE_DIR / lang / "LC_MESSAGES" / "messages.po"
    if not po.exists():
        return _gettext.NullTranslations()  # English: the msgids themselves
    with po.open("rb") as f:
        catalog = read_po(f, locale=lang)
    buf = io.BytesIO()
    write_mo(buf, catalog, use_fuzzy=False)
    buf.seek(0)
    return _gettext.GNUTranslations(buf)


def set_language(lang: str | None) -> str:
    chosen = lang if lang in LANGUAGES else DEFAULT
    _lang.set(chosen)
    return chosen


def language() -> str:
    return _lang.get()


def gettext(message: str, **params) -> str:
    text = translations(language()).gettext(message)
    return text % params if params else text


def ngettext(singular: str, plural: str, n: int, **params) -> str:
    text = translations(language()).ngettext(singular, plural, n)
    return text % {"num": fmt_int(n), **params}


_ = gettext


def N_(message: str) -> str:
    """Marks a string for extraction; translated where it is shown."""
    return message


# --- formats ------------------------------------------------------------------------------

def vn(value: datetime | None) -> datetime | None:
    return None if value is None else aware(value).astimezone(VN)


def fmt_time(value: datetime | None, seconds: bool = False) -> str:
    v = vn(value)
    if v is None:
        return "—"
    return v.strftime("%d/%m/%Y %H:%M:%S" if seconds else "%d/%m/%Y %H:%M")


def fmt_date(value: date | None) -> str:
    return "—" if value is None else value.strftime("%d/%m/%Y")


def parse_date(text: str | None) -> date | None:
    """A date typed as dd/mm/yyyy (as shown everywhere in the console) or yyyy-mm-dd; None if neither."""
    text = (text or "").strip()
    for fmt in ("%d/%m/%Y", "%Y-%m-%d"):
        try:
            return datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    return None


def fmt_clock(value: datetime) -> str:
    return vn(value).strftime("%H:%M:%S")


@cache
def _locale(lang: str) -> Locale:
    return Locale.parse(lang)  # parsed once: Babel parses a locale name on every call (~70 µs)


@cache
def _int_format(locale: str) -> tuple[str, bool]:
    """(the locale's group separator, whether Python's grouping writes a whole number as Babel does)."""
    group = get_group_symbol(_locale(locale))
    same = all(f"{n:,}".replace(",", group) == format_decimal(n, locale=_locale(locale))
               for n in (0, 7, -7, 999, 1000, -1000, 12345, 1234567, -98765432101))
    return group, same


def fmt_int(n) -> str:
    if n is None:
        return "—"
    if type(n) is int:  # the overview writes thousands of them: Babel's general path costs ~0.5 ms each
        group, same = _int_format(language())
        if same:
            return f"{n:,}".replace(",", group)
    return format_decimal(n, locale=_locale(language()))


def fmt_num(x, digits: int = 1) -> str:
    if x is None:
        return "—"
    return format_decimal(round(float(x), digits), format="#,##0." + "#" * digits, locale=_locale(language()))


def fmt_duration(value: timedelta | float | None) -> str:
    """3 ngày 4 giờ · 5 giờ 12 phút · 42 phút · 12 giây (coarse, for people)."""
    if value is None:
        return "—"
    s = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if s < 1:
        return _("%(n)s ms", n=fmt_int(round(s * 1000)))
    if s < 60:
        return _("%(n)s s", n=fmt_num(s))
    m, sec = divmod(int(s), 60)
    if m < 60:
        return _("%(m)s min %(s)s s", m=m, s=sec)
    h, m = divmod(m, 60)
    if h < 48:
        return _("%(h)s h %(m)s min", h=h, m=m)
    return _("%(d)s d %(h)s h", d=h // 24, h=h % 24)


def fmt_size(n: int | None) -> str:
    if n is None:
        return "—"
    if n < 1024:
        return f"{fmt_int(n)} B"
    if n < 1024 * 1024:
        return f"{fmt_num(n / 1024)} KiB"
    return f"{fmt_num(n / 1024 / 1024)} MiB"


# --- names --------------------------------------------------------------------------------

PRIORITIES = {0: N_("Normal"), 1: N_("Urgent"), 2: N_("Very urgent"), 3: N_("Express"),
              4: N_("Express at a set time")}
STATUSES = {
    "01": N_("arrived"), "02": N_("rejected"), "03": N_("accepted and registered"),
    "04": N_("waiting for assignment"), "05": N_("assigned, being handled"), "06": N_("handled, done"),
    "13": N_("recalled by the sender"), "15": N_("recall/update agreed"), "16": N_("recall/update refused"),
}
DOC_TYPES = {"1": N_("Official letter"), "2": N_("Decision")}  # when the package names none
MAINTENANCE = {"running": N_("running"), "draining": N_("draining"), "stopped": N_("stopped")}


def priority_name(p) -> str:
    try:
        return _(PRIORITIES[int(p)])
    except (KeyError, TypeError, ValueError):
        return str(p)


def status_name(code: str | None) -> str:
    if not code:
        return _("no status yet")
    return f"{code} · {_(STATUSES.get(code, N_('unknown status')))}"


def doc_type_name(code: str | None, name: str | None = None) -> str:
    """The package's own TypeName (Công văn, Quyết định…), else a known code, else the code."""
    if name:
        return name
    if code in DOC_TYPES:
        return _(DOC_TYPES[code])
    return code or "—"


def reason_meaning(code: str | None) -> str:
    return _(REASONS[code]) if code in REASONS else ""
