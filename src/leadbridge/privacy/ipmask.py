"""IP masking: the address is looked up first, then only a masked form is kept."""

from __future__ import annotations

import ipaddress
from functools import lru_cache

# bytes masked on IPv4 -> bits masked on IPv6 (as Matomo: 1 -> /64, 2 -> /48, 3 -> /32)
_V6_BITS = {0: 0, 1: 64, 2: 80, 3: 96}


@lru_cache(maxsize=100_000)
def mask_ip(ip: str, mask_bytes: int) -> str | None:
    """The address with its last `mask_bytes` bytes zeroed (IPv4); None if not an address."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped:
        addr = addr.ipv4_mapped
    if isinstance(addr, ipaddress.IPv4Address):
        bits = 8 * mask_bytes
        return str(ipaddress.IPv4Address(int(addr) >> bits << bits))
    bits = _V6_BITS[mask_bytes]
    return str(ipaddress.IPv6Address(int(addr) >> bits << bits))
