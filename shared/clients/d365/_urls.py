"""Which URLs handed out by F&O the client calls, with our token or without it.

F&O's answers are input too: the client follows GetAzureWriteUrl's ``BlobUrl`` (the package
upload), the error-file URLs and a dequeued message's ``DownloadLocation``. Two rules, checked
before a byte is sent:

- **SAS URL** (called without our token): ``https``, no user name, on a blob endpoint of the
  cloud F&O runs in, on the default port: ``<account>.blob.core.windows.net`` (and the DNS-zone
  form ``<account>.zNN.blob.storage.azure.net``) for F&O on ``*.dynamics.com`` and any other
  host, ``<account>.blob.core.usgovcloudapi.net`` for ``*.dynamics.us`` (US Government),
  ``<account>.blob.core.chinacloudapi.cn`` for ``*.dynamics.cn`` (21Vianet); or on a host the
  caller allows (any port: a storage emulator's, the D365 emulator's own blob endpoint).
- **Token URL**: exactly F&O's scheme, host and port (the default port spelt or not).

Anything else raises :class:`D365UntrustedUrlError`, whose text names the URL without its
query string (the SAS) and the rule. Nothing here does I/O or imports the rest of the app.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from ._errors import D365UntrustedUrlError
from ._text import shorten, url_without_query

__all__ = ["UrlPolicy", "blob_endpoint_rule", "normalize_sas_host"]

_ACCOUNT = r"[a-z0-9]{3,24}"
_PUBLIC = (
    ("<account>.blob.core.windows.net", re.compile(rf"^{_ACCOUNT}\.blob\.core\.windows\.net$")),
    (
        "<account>.zNN.blob.storage.azure.net",
        re.compile(rf"^{_ACCOUNT}\.z[0-9]{{2}}\.blob\.storage\.azure\.net$"),
    ),
)
_US_GOVERNMENT = (
    (
        "<account>.blob.core.usgovcloudapi.net",
        re.compile(rf"^{_ACCOUNT}\.blob\.core\.usgovcloudapi\.net$"),
    ),
)
_CHINA = (
    (
        "<account>.blob.core.chinacloudapi.cn",
        re.compile(rf"^{_ACCOUNT}\.blob\.core\.chinacloudapi\.cn$"),
    ),
)
# F&O's host suffix -> its cloud's blob endpoints (any other host: the public cloud).
_CLOUDS = (
    ((".dynamics.cn",), _CHINA),
    ((".dynamics.us", ".microsoftdynamics.us", ".appsplatform.us"), _US_GOVERNMENT),
)
_DEFAULT_PORTS = {"http": 80, "https": 443}
_HOST_NAME = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)(?:\.(?!-)[a-z0-9-]{1,63}(?<!-))*$", re.ASCII)
_SETTING = "D365_SAS_HOSTS"


def normalize_sas_host(text: str) -> str:
    """A host allowed for SAS URLs, as written in a setting: a DNS name or an IP address,
    lower case, without brackets, scheme, port or path.

    :raises ValueError: saying what is wrong (the text is echoed: hosts are not secrets).
    """
    host = text.strip().lower().rstrip(".")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    if not _HOST_NAME.match(host) or len(host) > 253:
        raise ValueError(
            f"{shorten(text, 80)!r} is not a host name or IP address (write the host alone, "
            "without scheme, port or path)"
        )
    return host


def blob_endpoint_rule(base_url: str) -> str:
    """The blob endpoints SAS URLs may use for F&O at `base_url`, in words."""
    return " or ".join(form for form, _ in _endpoints(urlsplit(base_url).hostname or ""))


def _endpoints(fno_host: str) -> tuple[tuple[str, re.Pattern[str]], ...]:
    host = fno_host.lower()
    for suffixes, endpoints in _CLOUDS:
        if host.endswith(suffixes):
            return endpoints
    return _PUBLIC


@dataclass(frozen=True)
class UrlPolicy:
    """The two rules for one F&O environment.

    :param base_url: F&O's root; its origin is the only one our token goes to, and its host
        names the cloud whose blob endpoints SAS URLs may use.
    :param sas_hosts: further hosts SAS URLs may use (any port), e.g. an emulator's.
    """

    base_url: str
    sas_hosts: frozenset[str] = frozenset()

    @classmethod
    def of(cls, base_url: str, sas_hosts: Iterable[str] = ()) -> UrlPolicy:
        """The policy for `base_url`, with `sas_hosts` normalised.

        :raises ValueError: a host in `sas_hosts` is not a host name or IP address.
        """
        if isinstance(sas_hosts, str):
            raise ValueError("sas_hosts must be a collection of host names, not one string")
        return cls(base_url, frozenset(normalize_sas_host(host) for host in sas_hosts))

    def check_sas(self, url: object, *, operation: str, what: str) -> str:
        """`url` (stripped) when it may be called as a SAS URL.

        :param what: what F&O called the URL, for the message (e.g. "BlobUrl").
        :raises D365UntrustedUrlError: naming the URL without its query string and the rule.
        """
        problem = self._sas_problem(url)
        if problem is None:
            assert isinstance(url, str)
            return url.strip()
        hint = f"if F&O's storage really is on that host, add the host to {_SETTING}"
        raise self._refusal(url, operation, what, f"{problem}. {self._sas_rule()}", hint)

    def check_download(self, url: object, *, operation: str, what: str) -> tuple[str, bool]:
        """(`url`, whether our token goes with it): F&O's exact origin gets the token, a SAS
        URL is called without it.

        :raises D365UntrustedUrlError: the URL is neither, naming both rules.
        """
        if self.is_fno_origin(url):
            assert isinstance(url, str)
            return url.strip(), True
        problem = self._sas_problem(url)
        if problem is None:
            assert isinstance(url, str)
            return url.strip(), False
        rule = (
            f"it is not F&O's own origin {self._origin_text()}, the only one the access token "
            f"goes to (same scheme, host and port), nor a SAS URL: {problem}. {self._sas_rule()}"
        )
        hint = (
            f"if F&O really hands out SAS downloads from that host, add the host to {_SETTING} "
            "(they are fetched without the access token)"
        )
        raise self._refusal(url, operation, what, rule, hint)

    def is_fno_origin(self, url: object) -> bool:
        """True when `url` has exactly F&O's scheme, host and port (and no user name)."""
        parts = _split(url)
        return parts is not None and not _has_user(parts) and _origin(parts) == self._origin()

    def _sas_problem(self, url: object) -> str | None:
        parts = _split(url)
        if parts is None:
            return "it is not an absolute URL"
        if parts.scheme.lower() != "https":
            return f"its scheme is {parts.scheme or 'missing'!r}, not https"
        if _has_user(parts):
            return "it carries a user name"
        host = parts.hostname or ""
        if host in self.sas_hosts:
            return None
        return self._endpoint_problem(host, _port(parts))

    def _endpoint_problem(self, host: str, port: int) -> str | None:
        if not any(pattern.match(host) for _, pattern in _endpoints(self._fno_host())):
            return f"its host {host!r} is not a blob endpoint of F&O's cloud"
        if port != _DEFAULT_PORTS["https"]:
            return f"it names port {port}, and a blob endpoint answers on 443"
        return None

    def _sas_rule(self) -> str:
        allowed = ", ".join(sorted(self.sas_hosts)) or "none"
        return (
            f"A SAS URL must be https on a blob endpoint of F&O's cloud "
            f"({blob_endpoint_rule(self.base_url)}) or on a host in {_SETTING} (now: {allowed})"
        )

    def _origin_text(self) -> str:
        scheme, host, port = self._origin()
        return f"{scheme}://{host}:{port}"

    def _refusal(
        self, url: object, operation: str, what: str, rule: str, hint: str
    ) -> D365UntrustedUrlError:
        shown = _shown(url)
        return D365UntrustedUrlError(
            f"{operation}: refused the {what} F&O handed out, {shorten(shown, 300)} (query "
            f"string not shown): {rule}. Nothing was sent to it; {hint}.",
            url=shown,
            rule=rule,
            operation=operation,
        )

    def _origin(self) -> tuple[str, str, int]:
        parts = _split(self.base_url)
        assert parts is not None, self.base_url
        return _origin(parts)

    def _fno_host(self) -> str:
        return urlsplit(self.base_url).hostname or ""


def _split(url: object) -> SplitResult | None:
    """`url` split, None when it is not an absolute URL with a host and a valid port."""
    if not isinstance(url, str):
        return None
    try:
        parts = urlsplit(url.strip())
        _port(parts)
    except ValueError:
        return None
    return parts if parts.hostname else None


def _shown(url: object) -> str:
    """`url` for a message: no query string, fragment, user name or password."""
    parts = _split(url)
    if parts is None:
        return shorten(url_without_query(url), 200) if isinstance(url, str) else repr(url)
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    return f"{parts.scheme}://{netloc}{parts.path}"


def _port(parts: SplitResult) -> int:
    return parts.port or _DEFAULT_PORTS.get(parts.scheme.lower(), 0)


def _origin(parts: SplitResult) -> tuple[str, str, int]:
    return (parts.scheme.lower(), (parts.hostname or "").lower(), _port(parts))


def _has_user(parts: SplitResult) -> bool:
    return parts.username is not None or parts.password is not None


def validate_base_url(base_url: str) -> str:
    parts = urlsplit(base_url.strip() if isinstance(base_url, str) else "")
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError(
            f"base_url must be the environment root such as "
            f"https://contoso.operations.dynamics.com, got {base_url!r}"
        )
    if parts.query or parts.fragment:
        raise ValueError("base_url must not have a query string or fragment")
    return base_url.strip().rstrip("/")
