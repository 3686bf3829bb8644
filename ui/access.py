"""Who may change the knowledge base from the browser: everyone, nobody, or whoever knows the password.

Asking questions is always open. Adding, replacing and deleting documents
and rebuilding the index are switched off by `KB_READ_ONLY=1`, or put
behind a password by `KB_ADMIN_PASSWORD` (or `admin_password` in Streamlit's
secrets, `.streamlit/secrets.toml`). With neither, the app is for one
person on their own machine and everything is open. `KB_UPLOAD_QUOTA_MB`
caps what all uploads together may take.

Wrong passwords are counted for the whole server, not per browser session:
after `PasswordGuesses.allowed` of them within its window, no password is
tried from any session until the oldest has aged out. Opening more sessions
buys no more guesses (the admin waits out the window too, at worst).
"""

from __future__ import annotations

import hmac
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
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


class TooManyGuesses(Exception):
    """Too many wrong passwords were tried lately, from any session.

    Attributes:
        retry_after: Seconds until a password is tried again.
    """

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"too many wrong admin passwords; try again in {retry_after:.0f} s")
        self.retry_after = retry_after


class PasswordGuesses:
    """Wrong admin passwords across the whole server: at most `allowed` within any `window` seconds.

    Thread-safe: every browser session of the process shares the one instance
    `PASSWORD_GUESSES`, and counting a guess and comparing it happen under one lock.
    """

    def __init__(self, allowed: int = 5, window: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.allowed = allowed
        self.window = window
        self._clock = clock
        self._lock = threading.Lock()
        self._wrong: deque[float] = deque()  # when each recent wrong guess came

    def check(self, access: Access, given: str) -> bool:
        """Whether `given` is the password, counting it when it is not.

        Raises:
            TooManyGuesses: `allowed` wrong guesses came within the last `window`
                seconds; `given` is not compared at all.
        """
        with self._lock:
            now = self._clock()
            while self._wrong and self._wrong[0] <= now - self.window:
                self._wrong.popleft()
            if len(self._wrong) >= self.allowed:
                raise TooManyGuesses(self._wrong[0] + self.window - now)
            if access.unlocks(given):
                return True
            self._wrong.append(now)
            return False


PASSWORD_GUESSES = PasswordGuesses()


def check_password(access: Access, given: str) -> bool:
    """`given` tried against the admin password, within the server-wide limit (`PASSWORD_GUESSES.check`)."""
    return PASSWORD_GUESSES.check(access, given)
