import pytest

from hub.errors import UsageError
from hub.registry import codes


def test_ancestors_read_right_to_left():
    assert codes.ancestors("000.46.24.H44") == ["000.00.24.H44", "000.00.00.H44"]
    assert codes.ancestors("002.00.20.H13") == ["000.00.20.H13", "000.00.00.H13"]
    assert codes.ancestors("001.02.03.G01") == ["000.02.03.G01", "000.00.03.G01", "000.00.00.G01"]
    assert codes.ancestors("000.00.00.G22") == []


@pytest.mark.parametrize("bad", ["28.22.H17", "000.00.00.g22", "000.00.00.G2", "000.00.00.22G", "", " 000.00.00.G22x"])
def test_malformed_codes_refused(bad):
    assert not codes.is_valid(bad)
    with pytest.raises(UsageError) as e:
        codes.check(bad)
    assert "NNN.NN.NN.Xnn" in e.value.message
