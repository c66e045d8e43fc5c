"""Agency search ignores accents, case and Unicode form, on SQLite and PostgreSQL alike."""

from __future__ import annotations

import unicodedata

import pytest

from hub.registry.fold import fold
from hub.registry.store import add_agency, import_csv, list_agencies


def test_fold():
    assert fold("UBND tỉnh Nghệ An") == "ubnd tinh nghe an"
    assert fold("NGHỆ AN") == fold("nghe an") == fold(unicodedata.normalize("NFD", "Nghệ An")) == "nghe an"
    assert fold("Sở Tư pháp  Đà   Nẵng") == "so tu phap da nang"
    assert fold("") == "" and fold(None) == ""


@pytest.fixture
def engine(migrated_engine):
    return migrated_engine


async def test_search_finds_nghe_an_however_it_is_typed(engine):
    await add_agency(engine, "000.00.00.H41", name="UBND tỉnh Nghệ An", connected=False)
    await add_agency(engine, "000.00.00.H44", name="UBND tỉnh Quảng Nam", connected=False)
    await import_csv(engine, "code,name\n000.00.01.H41,Sở Nội vụ tỉnh Nghệ An\n000.00.00.H42,Đà Nẵng 100%_\n")
    decomposed = unicodedata.normalize("NFD", "Nghệ An")
    assert decomposed != "Nghệ An"
    for typed in ("nghe an", "NGHỆ AN", decomposed, "Nghệ An", "  nghe   AN "):
        total, rows = await list_agencies(engine, typed.strip())
        assert total == 2 and {r["code"] for r in rows} == {"000.00.00.H41", "000.00.01.H41"}, typed
    assert (await list_agencies(engine, "da nang"))[0] == 1
    assert (await list_agencies(engine, "100%_"))[0] == 1
    assert (await list_agencies(engine, "1%0"))[0] == 0  # % is a character here, not a wildcard
    assert (await list_agencies(engine, "H44"))[0] == 1
    # renaming keeps the folded column in step
    await add_agency(engine, "000.00.00.H44", name="UBND tỉnh Hà Tĩnh")
    assert (await list_agencies(engine, "ha tinh"))[0] == 1 and (await list_agencies(engine, "quang nam"))[0] == 0
