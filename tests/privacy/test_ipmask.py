from __future__ import annotations

import pytest

from leadbridge.privacy.ipmask import mask_ip


@pytest.mark.parametrize(("ip", "n", "want"), [
    ("203.0.113.77", 0, "203.0.113.77"),
    ("203.0.113.77", 1, "203.0.113.0"),
    ("203.0.113.77", 2, "203.0.0.0"),
    ("2001:db8:1234:5678:9abc:def0:1234:5678", 1, "2001:db8:1234:5678::"),
    ("2001:db8:1234:5678:9abc:def0:1234:5678", 2, "2001:db8:1234::"),
    ("::ffff:203.0.113.77", 2, "203.0.0.0"),
])
def test_masking(ip: str, n: int, want: str) -> None:
    assert mask_ip(ip, n) == want


def test_three_bytes_keep_only_the_first() -> None:
    assert mask_ip("203.0.113.77", 3) == "203.0.0.0"
    assert mask_ip("10.20.30.40", 3) == "10.0.0.0"


def test_not_an_address() -> None:
    assert mask_ip("not-an-ip", 2) is None
