"""A `requests.Session` that reads the environment's network settings once (proxies, CA bundle).

requests re-reads them from ``os.environ`` on every request it sends (proxies, ``NO_PROXY``,
``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE``) and looks for ``~/.netrc``: about 0.4 ms of CPU a
request, paid in full by a poller making thousands of calls a tick and by every storage
request of a file. The clients' sessions read them once, when they are built, and decide
``NO_PROXY`` once per host, as requests would: one session may reach several hosts (F&O's, and
the storage hosts of the SAS URLs F&O hands out). An environment changed afterwards takes
effect at the next start of the process.
"""

from __future__ import annotations

import os
import threading
from typing import Any
from urllib.parse import urlsplit
from urllib.request import getproxies

import requests
from requests.utils import should_bypass_proxies

__all__ = ["PinnedSession", "Verify"]

Verify = bool | str
"""requests' ``verify``: a CA bundle's path (file or directory), True for certifi's bundle,
False for no certificate check."""


class PinnedSession(requests.Session):
    """A session whose proxies and CA bundle are the environment's when it was built.

    ``verify`` is set from ``REQUESTS_CA_BUNDLE`` or ``CURL_CA_BUNDLE`` (True when neither is
    set); the proxies of a request are the environment's ``*_proxy`` ones unless ``NO_PROXY``
    exempts its host, decided once per scheme and host.
    """

    def __init__(self) -> None:
        super().__init__()
        proxies = getproxies()
        self._no_proxy: str | None = proxies.pop("no", None)
        self._proxies = proxies
        self._by_origin: dict[str, dict[str, str]] = {}
        self._lock = threading.Lock()
        bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        self.verify: Verify = bundle or True
        self.trust_env = False

    def merge_environment_settings(
        self, url: str, proxies: Any, stream: Any, verify: Any, cert: Any
    ) -> dict[str, Any]:
        """requests' own merge (the environment left out), with the proxies pinned for the
        host of ``url`` where the request names none."""
        settings: dict[str, Any] = super().merge_environment_settings(
            url, proxies, stream, verify, cert
        )
        settings["proxies"] = {**self.proxies_for(url), **settings["proxies"]}
        return settings

    def proxies_for(self, url: str) -> dict[str, str]:
        """The environment's proxies for ``url``: none when ``NO_PROXY`` exempts its host."""
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        with self._lock:
            known = self._by_origin.get(origin)
            if known is None:
                # should_bypass_proxies sets os.environ["no_proxy"] for a moment when it is
                # given one: the lock keeps two first requests from doing so at once.
                exempt = should_bypass_proxies(url, no_proxy=self._no_proxy)
                known = self._by_origin[origin] = {} if exempt else dict(self._proxies)
        return known
