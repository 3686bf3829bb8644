"""Who may change the knowledge base from the browser: everyone, nobody, or whoever knows the password.

Asking questions is always open. Adding, replacing and deleting documents
and rebuilding the index are switched off by `KB_READ_ONLY=1`, or put
behind a password by `KB_ADMIN_PASSWORD` (or `admin_password` in Streamlit's
secrets, `.streamlit/secrets.toml`). With neither, the app is for one
person on their own machine and everything is open. `KB_UPLOAD_QUOTA_MB`
caps what all uploads together may take.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Mapping
from dataclasses import dataclass

from ingest.uploads import DEFAULT_UPLOAD_QUOTA_BYTES

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


@dataclass(frozen=True)
class Access:
    """What the browser may change.

    Attributes:
        read_only: Nobody may change anything (`KB_READ_ONLY=1`).
        password: Changes need this password (None: no password asked).
        upload_quota: Bytes all uploads of the corpus may take together.
    """

    read_only: bool = False
    password: str | None = None
    upload_quota: int = DEFAULT_UPLOAD_QUOTA_BYTES

    @classmethod
    def resolve(cls, environ: Mapping[str, str] | None = None, secrets: Mapping[str, object] | None = None) -> Access:
        """From `KB_READ_ONLY`, `KB_ADMIN_PASSWORD` (else the `admin_password` secret) and `KB_UPLOAD_QUOTA_MB`.

        Raises:
            ValueError: A variable has a value that means nothing; the message names it and the valid ones.
        """
        env = os.environ if environ is None else environ
        flag = env.get("KB_READ_ONLY", "").strip().lower()
        if flag not in _TRUE | _FALSE:
            raise ValueError(f"KB_READ_ONLY must be 1 or 0 (or true/false), got {flag!r}")
        password = env.get("KB_ADMIN_PASSWORD") or str((secrets or {}).get("admin_password") or "") or None
        quota = env.get("KB_UPLOAD_QUOTA_MB", "").strip()
        try:
            quota_bytes = int(float(quota) * 2**20) if quota else DEFAULT_UPLOAD_QUOTA_BYTES
        except ValueError:
            raise ValueError(f"KB_UPLOAD_QUOTA_MB must be a number of megabytes, got {quota!r}") from None
        if quota_bytes < 0:
            raise ValueError(f"KB_UPLOAD_QUOTA_MB must not be negative, got {quota!r}")
        return cls(read_only=flag in _TRUE, password=password, upload_quota=quota_bytes)

    def unlocks(self, given: str) -> bool:
        """Whether `given` is the password (compared in constant time)."""
        return self.password is not None and hmac.compare_digest(given.encode("utf-8"), self.password.encode("utf-8"))
