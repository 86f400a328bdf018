"""The CA bundle of the client's session, looked up on disk once.

requests' `HTTPAdapter` looks the bundle up (``os.path.exists``, ``os.path.isdir``) for every
request it sends: about 6 % of a poll's CPU. The session's ``verify`` never changes, so
`D365Adapter` checks it when it is built and sets each connection pool from this record, as
requests would. A bundle missing then fails every HTTPS request with requests' own error, as
before; one added later needs a restart, as a changed environment does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from requests.utils import DEFAULT_CA_BUNDLE_PATH

from ..sessions import Verify

__all__ = ["TrustStore"]


@dataclass(frozen=True)
class TrustStore:
    """A session's ``verify`` as requests resolves it: the bundle's location and kind.

    :param verify: the session's setting; only True or a path is recorded (False needs no
        look-up).
    :param location: the bundle checked (certifi's for True).
    :param is_dir: a directory of certificates (OpenSSL's ``capath``), else one file.
    :param missing: requests' error text when the bundle was not there.
    """

    verify: Verify
    location: str = ""
    is_dir: bool = False
    missing: str | None = None

    @classmethod
    def check(cls, verify: Verify) -> TrustStore:
        """Look the bundle of `verify` up once."""
        if verify is not True and not (isinstance(verify, str) and verify):
            return cls(verify)
        location = verify if isinstance(verify, str) else DEFAULT_CA_BUNDLE_PATH
        if not location or not Path(location).exists():
            missing = (
                f"Could not find a suitable TLS CA certificate bundle, invalid path: {location}"
            )
            return cls(verify, location, missing=missing)
        return cls(verify, location, is_dir=Path(location).is_dir())

    def covers(self, verify: Verify, cert: Any) -> bool:
        """Whether a request with these settings may use this record (the session's own
        ``verify``, no client certificate)."""
        return bool(self.location) and cert is None and verify == self.verify

    def pool_key(self) -> dict[str, str]:
        """The CA part of urllib3's pool key, as requests sets it for a path."""
        if not isinstance(self.verify, str):
            return {}
        return {"ca_cert_dir" if self.is_dir else "ca_certs": self.verify}

    def apply(self, conn: Any, *, https: bool) -> None:
        """Set a connection pool's certificate checks as requests' ``cert_verify`` does.

        :raises OSError: requests' error for a missing bundle, on an HTTPS request.
        """
        if not https:
            conn.cert_reqs = "CERT_NONE"
            conn.ca_certs = None
            conn.ca_cert_dir = None
            return
        if self.missing is not None:
            raise OSError(self.missing)
        conn.cert_reqs = "CERT_REQUIRED"
        if self.is_dir:
            conn.ca_cert_dir = self.location
        else:
            conn.ca_certs = self.location
