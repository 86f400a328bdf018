"""The environment's network settings (proxies, CA bundle), read once into a `requests.Session`.

requests re-reads them from ``os.environ`` on every request it sends (proxies, ``NO_PROXY``,
``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE``) and looks for ``~/.netrc``: about 0.4 ms of CPU a
request, paid in full by a poller making thousands of calls a tick and by every storage
request of a file. The clients read them once, when their session is built: an environment
changed afterwards takes effect at the next start of the process.
"""

from __future__ import annotations

import requests

__all__ = ["Verify", "pin_environment"]

Verify = bool | str
"""requests' ``verify``: a CA bundle's path (file or directory), True for certifi's bundle,
False for no certificate check."""


def pin_environment(session: requests.Session, url: str) -> Verify:
    """Set on `session` the proxies and CA bundle the environment gives requests to `url`,
    then stop `session` reading the environment per request (``trust_env = False``).

    :param url: the endpoint the session talks to (``NO_PROXY`` is matched against its host).
    :returns: the ``verify`` setting now on the session, for a transport that passes its own
        ``verify`` with every request (azure-core's does).
    """
    settings = session.merge_environment_settings(url, {}, None, None, None)
    session.proxies.update(settings["proxies"])
    verify: Verify = settings["verify"]
    session.verify = verify
    session.trust_env = False
    return verify
