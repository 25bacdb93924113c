"""Token storage. Secrets live only in the OS keyring; nothing here writes them anywhere else."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from app.connectors.errors import KeyringUnavailable

SERVICE = "crossledger"


@dataclass(slots=True)
class Tokens:
    access_token: str
    refresh_token: str | None = None
    expires_at: float | None = None  # epoch seconds
    refresh_issued_at: float | None = None
    client_secret: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def expires_within(self, seconds: float, now: float | None = None) -> bool:
        if self.expires_at is None:
            return False
        return (now if now is not None else time.time()) + seconds >= self.expires_at

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Tokens:
        return cls(**json.loads(text))


class TokenStore(Protocol):
    def load(self, connection_id: str) -> Tokens | None: ...

    def save(self, connection_id: str, tokens: Tokens) -> None: ...

    def delete(self, connection_id: str) -> None: ...


class KeyringTokenStore:
    """One keyring entry per connection, holding the token set as JSON."""

    def __init__(self, service: str = SERVICE) -> None:
        self.service = service

    @staticmethod
    def check() -> str:
        """Name the keyring backend, or raise KeyringUnavailable with what to install."""
        import keyring
        from keyring.backends import fail

        backend = keyring.get_keyring()
        if isinstance(backend, fail.Keyring) or getattr(backend, "priority", 1) <= 0:
            raise KeyringUnavailable(
                "No password keyring is available, so Crossledger cannot store connection tokens safely. "
                "On Linux install and start a Secret Service provider (for example the gnome-keyring "
                "package, running in your desktop session), then try again."
            )
        return f"{type(backend).__module__}.{type(backend).__name__}"

    def _call(self, fn, *args):
        import keyring.errors

        try:
            return fn(*args)
        except keyring.errors.PasswordDeleteError:
            raise
        except keyring.errors.NoKeyringError as exc:
            self.check()
            raise KeyringUnavailable(str(exc)) from exc
        except keyring.errors.KeyringError as exc:
            raise KeyringUnavailable(
                f"The system keyring refused the request ({type(exc).__name__}). "
                "Unlock your keyring and try again."
            ) from exc

    def load(self, connection_id: str) -> Tokens | None:
        import keyring

        text = self._call(keyring.get_password, self.service, connection_id)
        return Tokens.from_json(text) if text else None

    def save(self, connection_id: str, tokens: Tokens) -> None:
        import keyring

        self._call(keyring.set_password, self.service, connection_id, tokens.to_json())

    def delete(self, connection_id: str) -> None:
        import keyring
        import keyring.errors

        with contextlib.suppress(keyring.errors.PasswordDeleteError):
            self._call(keyring.delete_password, self.service, connection_id)


class MemoryTokenStore:
    """For unit tests and in-process runs that must not touch the user's keyring."""

    def __init__(self) -> None:
        self._data: dict[str, str] = {}
        self._lock = threading.Lock()

    def load(self, connection_id: str) -> Tokens | None:
        with self._lock:
            text = self._data.get(connection_id)
        return Tokens.from_json(text) if text else None

    def save(self, connection_id: str, tokens: Tokens) -> None:
        with self._lock:
            self._data[connection_id] = tokens.to_json()

    def delete(self, connection_id: str) -> None:
        with self._lock:
            self._data.pop(connection_id, None)
