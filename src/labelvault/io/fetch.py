"""Fetching an import file by URL without becoming a door into the network (SSRF).

Only http and https; the host is resolved once and the connection goes to that address (no
second lookup an attacker's DNS could change); private, loopback, link-local, multicast,
reserved and cloud-metadata addresses are refused unless the operator allows them; every
redirect is checked the same way; the body is capped. Hosts must be on the allow-list.
"""

from __future__ import annotations

import ipaddress
import socket
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urljoin, urlsplit

import httpx

from labelvault.domain.access import Actor
from labelvault.errors import InvalidInput, PayloadTooLarge
from labelvault.io.importer import ImportReport, ImportService

MAX_REDIRECTS = 5


@dataclass(frozen=True)
class FetchPolicy:
    allowed_hosts: frozenset[str] = frozenset()  # exact host names, or "*" for any public host
    allow_private: bool = False  # private, loopback and link-local targets (tests, on-premises stores)
    max_bytes: int = 1 << 30
    timeout: float = 30.0
    schemes: frozenset[str] = field(default_factory=lambda: frozenset({"http", "https"}))


def _refused(url: str, why: str) -> InvalidInput:
    return InvalidInput(f"refusing to fetch {url}: {why}", details={"field": "url"})


def _check_address(url: str, address: str, policy: FetchPolicy) -> None:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    metadata = ip in ipaddress.ip_network("169.254.0.0/16") or ip == ipaddress.ip_address("fd00:ec2::254")
    if metadata:
        raise _refused(url, f"{ip} is a link-local (cloud metadata) address")
    if not ip.is_global and not policy.allow_private:
        raise _refused(url, f"{ip} is a private, loopback or reserved address")
    if ip.is_multicast or ip.is_unspecified:
        raise _refused(url, f"{ip} is not a unicast address")


def resolve_target(url: str, policy: FetchPolicy) -> tuple[str, str, int]:
    """Check scheme and host; resolve once. Returns (host, address, port)."""
    parts = urlsplit(url)
    if parts.scheme not in policy.schemes:
        raise _refused(url, f"scheme {parts.scheme or '(none)'!r} is not allowed (http or https only)")
    host = parts.hostname
    if not host:
        raise _refused(url, "no host")
    if "*" not in policy.allowed_hosts and host.lower() not in policy.allowed_hosts:
        raise _refused(url, f"host {host} is not on the allow-list (LABELVAULT_IMPORT_ALLOWED_HOSTS)")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise _refused(url, f"cannot resolve {host}: {exc.strerror}") from None
    address = str(infos[0][4][0])
    for info in infos:  # every address the name has must pass, not just the first
        _check_address(url, str(info[4][0]), policy)
    return host, address, port


def _pinned_url(url: str, address: str) -> str:
    """The URL with its host replaced by the checked address (IPv6 in brackets)."""
    parts = urlsplit(url)
    literal = f"[{address}]" if ":" in address else address
    netloc = literal + (f":{parts.port}" if parts.port else "")
    return parts._replace(netloc=netloc).geturl()


def fetch(url: str, policy: FetchPolicy) -> Iterator[bytes]:
    """Stream the body of ``url``, following checked redirects, never past ``max_bytes``."""
    current = url
    with httpx.Client(timeout=policy.timeout, follow_redirects=False, trust_env=False) as client:
        for _ in range(MAX_REDIRECTS + 1):
            host, address, _port = resolve_target(current, policy)
            # Connect to the address we checked; keep the name for Host and TLS (SNI, certificate).
            request = client.build_request("GET", _pinned_url(current, address), headers={"Host": host},
                                           extensions={"sni_hostname": host})
            response = client.send(request, stream=True)
            try:
                if response.is_redirect:
                    location = response.headers.get("location", "")
                    current = urljoin(current, location)
                    continue
                if response.status_code != 200:
                    raise InvalidInput(f"fetching {url} failed: HTTP {response.status_code}", details={"field": "url"})
                declared = response.headers.get("content-length")
                if declared and declared.isdigit() and int(declared) > policy.max_bytes:
                    raise PayloadTooLarge(f"{url} is larger than {policy.max_bytes} bytes")
                received = 0
                for chunk in response.iter_bytes():
                    received += len(chunk)
                    if received > policy.max_bytes:
                        raise PayloadTooLarge(f"{url} is larger than {policy.max_bytes} bytes")
                    yield chunk
                return
            finally:
                response.close()
    raise _refused(url, f"more than {MAX_REDIRECTS} redirects")


def fetch_to_file(url: str, policy: FetchPolicy, target: Path | BinaryIO) -> int:
    """Download to a file (imports read files); returns the bytes written."""
    written = 0
    handle = target.open("wb") if isinstance(target, Path) else target
    try:
        for chunk in fetch(url, policy):
            handle.write(chunk)
            written += len(chunk)
    finally:
        if isinstance(target, Path):
            handle.close()
    return written


class UrlImportService:
    """Import a file that lives at a URL: access checked first, then a checked, capped download."""

    def __init__(self, imports: ImportService, policy: FetchPolicy) -> None:
        self.imports = imports
        self.policy = policy

    def import_url(
        self,
        actor: Actor,
        client_id: int,
        project_id: int,
        url: str,
        *,
        format: str | None = None,
        skip_invalid: bool = False,
        mapping: Mapping[str, str] | None = None,
    ) -> ImportReport:
        self.imports.authorize(actor, client_id, project_id)
        with tempfile.TemporaryDirectory(prefix="labelvault-url-") as folder:
            path = Path(folder) / (Path(urlsplit(url).path).name or "download")
            fetch_to_file(url, self.policy, path)
            return self.imports.import_file(actor, client_id, project_id, path, format=format,
                                            skip_invalid=skip_invalid, mapping=mapping)
