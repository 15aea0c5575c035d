"""Where a server may listen: loopback freely, anywhere else only behind an API key. Shared by
the HTTP server and the MCP server; standard library only, so neither pulls in the other's
framework."""

from __future__ import annotations

import ipaddress

from ..errors import InvalidOptionError

LOCAL_HOSTS = ("localhost", "ip6-localhost")


def is_local(host: str) -> bool:
    """Whether ``host`` is a loopback address, reachable from this machine only."""
    if host in LOCAL_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, api_key: str | None) -> None:
    """Refuse to serve beyond loopback without an API key."""
    if not is_local(host) and not api_key:
        raise InvalidOptionError(
            f"Serving on {host} exposes the index to the network; set SEMSEARCH_API_KEY to require a bearer token, "
            "or bind to 127.0.0.1"
        )
