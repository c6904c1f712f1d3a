"""How many new sessions one client may open (SPEC §9: "one client cannot open sessions without
limit"), without ever refusing someone their existing chat.

The client is its network address as the ASGI server reports it. uvicorn already replaces the
peer address with the ``X-Forwarded-For`` one when the peer is a trusted proxy
(``FORWARDED_ALLOW_IPS``), so behind a load balancer this is the visitor's address, not the
balancer's. A client-supplied id header is not used: whoever floods would simply send a new one
with every hello. IPv6 clients are counted per /64, the block one subscriber usually holds.

Only ``hello`` without a resume token is counted; resuming is never limited. The buckets live in
this process's memory (never written anywhere, never logged): with N instances behind a balancer
a client can open up to N times the limit. Trade-offs are in docs/operations.md.
"""

from __future__ import annotations

import ipaddress
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Final

from app.core.ratelimit import TokenBucket

# Clients remembered at once; the least recently seen is forgotten first. A forgotten client
# starts again with a full burst, which is what it would have refilled to by then anyway
# unless it is one of this many clients opening sessions at the same moment.
MAX_CLIENTS: Final = 100_000
_IPV6_PREFIX: Final = 64


def client_key(host: str | None) -> str:
    """The unit the limit counts: an IPv4 address, an IPv6 /64, or the raw peer name."""
    if not host:
        return "-"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host  # e.g. a unix socket path: one client
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, _IPV6_PREFIX), strict=False))
    return str(address)


class SessionOpenLimiter:
    """A token bucket per client: ``burst`` sessions at once, then ``per_min`` a minute.

    Opening and closing need no bound of their own: every new session and every socket
    closing goes through one of the opener's lanes (app/chat/opener.py), one pooled connection
    at most, which a flood fills with bigger batches, not more connections."""

    def __init__(
        self,
        *,
        burst: int,
        per_min: float,
        max_clients: int = MAX_CLIENTS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._capacity = float(burst)
        self._rate = per_min / 60.0
        self._max_clients = max_clients
        self._clock = clock
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def try_open(self, client: str) -> float | None:
        """Takes one session from ``client``'s bucket: None if allowed, else the seconds until
        one will be."""
        now = self._clock()
        bucket = self._buckets.get(client)
        if bucket is None:
            bucket = self._buckets[client] = TokenBucket(tokens=self._capacity, updated=now)
            while len(self._buckets) > self._max_clients:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(client)
        return bucket.take(now, rate=self._rate, capacity=self._capacity)
