"""The HTTP layer every connector shares: auth, refresh, rate limits, retries and redaction."""

from __future__ import annotations

import json
import logging
import random
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from decimal import Decimal
from typing import Any, Protocol

import httpx

from app.connectors.errors import (
    AuthExpired,
    ConnectorError,
    RateLimited,
    ServerError,
    TransportError,
    Unauthorized,
)
from app.connectors.tls import verify_for
from app.connectors.tokens import Tokens, TokenStore

log = logging.getLogger("crossledger.http")

_SECRET_KEYS = re.compile(
    r'("?(?:access_token|refresh_token|client_secret|code_verifier|code|id_token|password)"?\s*[:=]\s*"?)'
    r'([^"&\s,}]+)',
    re.IGNORECASE,
)


def redact(text: str) -> str:
    """Remove token-like values from a string before it reaches a log or a crash report."""
    text = re.sub(r"(?i)(authorization:?\s*(?:bearer|zoho-oauthtoken|basic)?\s*)[^\s,'\"]+", r"\1***", text)
    return _SECRET_KEYS.sub(r"\1***", text)


class RateLimiter:
    """A sliding-window limiter shared by every request on one connection.

    ``clock`` and ``sleep`` are injected so tests and benchmarks can run without waiting.
    """

    def __init__(
        self,
        requests: int,
        window: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.requests = requests
        self.window = window
        self.clock = clock
        self.sleep = sleep
        self._stamps: deque[float] = deque()
        self._lock = threading.Lock()
        self._blocked_until = 0.0
        self._skew = 0.0

    def _now(self) -> float:
        return self.clock() + self._skew

    def _pause(self, seconds: float) -> None:
        """Sleep; when the injected sleep returns early (tests), move our own time forward instead."""
        start = self.clock()
        self.sleep(seconds)
        elapsed = self.clock() - start
        if elapsed < seconds:
            with self._lock:
                self._skew += seconds - elapsed

    def acquire(self) -> None:
        while True:
            with self._lock:
                now = self._now()
                while self._stamps and now - self._stamps[0] >= self.window:
                    self._stamps.popleft()
                wait = max(0.0, self._blocked_until - now)
                if not wait and len(self._stamps) < self.requests:
                    self._stamps.append(now)
                    return
                if not wait:
                    wait = self.window - (now - self._stamps[0])
            self._pause(max(wait, 0.001))

    def block_for(self, seconds: float) -> None:
        with self._lock:
            self._blocked_until = max(self._blocked_until, self._now() + seconds)


RefreshFn = Callable[[Tokens], Tokens]


class Budget(Protocol):
    """A provider account's allowance shared with every other process using it (see app.store.budget).

    ``take`` books one call costing ``cost`` units of the day (1, or Pipedrive's tokens for it): ``(0, "")``
    to go ahead, or ``(seconds, why)`` to wait first, where ``why`` is ``"blocked"`` (a Retry-After some
    process was given), ``"window"`` (the shared minute or second is full) or ``"day"`` (the day's calls
    are spent: ``seconds`` until it renews).
    """

    def take(self, cost: int = 1) -> tuple[float, str]: ...

    def refund(self, cost: int) -> None: ...

    def block(self, seconds: float, reason: str = "") -> None: ...

    def pause(self, seconds: float, sleep: Callable[[float], None]) -> None: ...

    def resume_at(self) -> float | None: ...

    def close(self) -> None: ...


class ApiClient:
    """One provider connection's HTTP client.

    ``refresh`` exchanges a refresh token for a new token set; the new set is saved to the
    token store *before* it is used, under one lock per connection, so a rotated refresh
    token is never lost and two threads never refresh at once.
    """

    def __init__(
        self,
        *,
        provider: str,
        connection_id: str,
        base_url: str,
        tokens: TokenStore,
        refresh: RefreshFn | None,
        limiter: RateLimiter,
        auth_scheme: str = "Bearer",
        auth_header: str = "Authorization",
        transport: httpx.BaseTransport | None = None,
        max_retries: int = 5,
        max_wait: float = 60.0,
        timeout: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        default_headers: dict[str, str] | None = None,
        classify_429: Callable[[httpx.Response], tuple[float | None, bool]] | None = None,
    ) -> None:
        self.provider = provider
        self.connection_id = connection_id
        self.tokens = tokens
        self.refresh_fn = refresh
        self.limiter = limiter
        self.auth_scheme = auth_scheme
        self.auth_header = auth_header  # Pipedrive's personal API token: ``x-api-token: <token>``, no scheme
        self.max_retries = max_retries
        self.max_wait = max_wait
        self.sleep = sleep
        self.request_count = 0
        self.units_spent = 0  # of the provider's daily allowance: one a request, or its price (``cost``)
        # What a request costs of the daily allowance, where the provider prices them (Pipedrive's tokens).
        self.cost: Callable[[str, str], int] | None = None
        # The account's shared allowance (optional; app.ops.workspaces.open_connectors sets it), and who
        # hears about a wait worth telling the user ("Zoho Books asked us to wait 7 s…").
        self.budget: Budget | None = None
        self.on_wait: Callable[[float, str], None] | None = None
        # Provider hook: (retry_after, daily) for a 429, so a daily cap fails at once instead of retrying.
        self.classify_429 = classify_429
        self._refresh_lock = threading.Lock()
        self._http = httpx.Client(
            base_url=base_url,
            transport=transport,
            timeout=timeout,
            headers={"Accept": "application/json", **(default_headers or {})},
            **verify_for(transport),
        )

    # -- tokens -----------------------------------------------------------------------------
    def _current_tokens(self) -> Tokens:
        tokens = self.tokens.load(self.connection_id)
        if tokens is None:
            raise AuthExpired(
                "This connection has no saved sign-in. Reconnect it to continue.", provider=self.provider
            )
        return tokens

    def access_token(self) -> str:
        tokens = self._current_tokens()
        if tokens.expires_within(120):
            tokens = self.refresh(stale=tokens.access_token)
        return tokens.access_token

    def refresh(self, stale: str | None = None) -> Tokens:
        """Refresh once per connection, even if several threads ask at the same time."""
        with self._refresh_lock:
            tokens = self._current_tokens()
            if stale is not None and tokens.access_token != stale and not tokens.expires_within(120):
                return tokens  # another thread refreshed while we waited
            if self.refresh_fn is None or not tokens.refresh_token:
                raise AuthExpired(
                    "The sign-in for this connection has expired. Reconnect it to continue.",
                    provider=self.provider,
                )
            new = self.refresh_fn(tokens)
            self.tokens.save(self.connection_id, new)
            log.info("%s: access token refreshed for connection %s", self.provider, self.connection_id)
            return new

    # -- requests ---------------------------------------------------------------------------
    def request(
        self,
        method: str,
        url: str,
        *,
        params: dict[str, Any] | None = None,
        json_body: Any = None,
        data: Any = None,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
        idempotent: bool | None = None,
        authenticated: bool = True,
    ) -> httpx.Response:
        """Send one request with retries; returns a 2xx/4xx response or raises a typed error.

        Writes without an idempotency mechanism are not retried after a transport failure:
        the outcome is unknown and the caller settles it by looking the record up.
        """
        if idempotent is None:
            idempotent = method.upper() in {"GET", "HEAD", "OPTIONS", "PUT", "DELETE"}
        attempt = 0
        refreshed = False
        while True:
            attempt += 1
            hdrs = dict(headers or {})
            token = ""
            if authenticated:
                token = self.access_token()
                hdrs[self.auth_header] = f"{self.auth_scheme} {token}" if self.auth_scheme else token
            self.limiter.acquire()
            cost = 1 if self.cost is None else self.cost(method.upper(), url)
            if self.budget is not None:
                self._spend(self.budget, cost)
            self.request_count += 1
            self.units_spent += cost
            try:
                resp = self._http.request(method, url, params=params, json=json_body, data=data, content=content,
                                          headers=hdrs)
                resp.read()
            except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
                log.warning("%s %s %s: %s (attempt %d)", self.provider, method, url, type(exc).__name__, attempt)
                if not idempotent or attempt > self.max_retries:
                    raise TransportError(
                        f"The connection to {self.provider} failed ({type(exc).__name__}).",
                        provider=self.provider,
                    ) from exc
                self.sleep(self._backoff(attempt))
                continue
            status = resp.status_code
            log.debug("%s %s %s -> %d", self.provider, method, resp.request.url.path, status)
            if status == 401:  # an expired sign-in names no account, so no allowance is charged for it
                self.units_spent -= cost
                if self.budget is not None:
                    self.budget.refund(cost)
            if status == 401 and authenticated and not refreshed:
                refreshed = True
                self.refresh(stale=token)
                continue
            if status == 401:
                raise Unauthorized(
                    f"{self.provider} refused the saved sign-in.", provider=self.provider, status=401
                )
            if status == 429 or (status == 503 and "Retry-After" in resp.headers):
                wait = self._retry_after(resp, attempt)
                if self.classify_429 is not None:
                    hinted, daily = self.classify_429(resp)
                    wait = hinted if hinted is not None else wait
                    if daily:
                        if self.budget is not None:  # every process stops asking until the day renews
                            self.budget.block(hinted or 0.0, "day")
                        raise RateLimited(
                            f"{self.provider}'s daily request allowance is used up; syncing resumes when it "
                            "renews.", retry_after=wait, daily=True, provider=self.provider, status=status)
                if self.budget is not None:  # the next process honours it too
                    self.budget.block(wait, "blocked")
                if attempt > self.max_retries or wait > self.max_wait:
                    raise RateLimited(
                        f"{self.provider} asked us to slow down for {wait:.0f} s.",
                        retry_after=wait,
                        provider=self.provider,
                        status=status,
                    )
                log.info("%s rate limited; waiting %.1f s", self.provider, wait)
                if self.budget is None:
                    self._tell_wait(wait)
                    self.limiter.block_for(wait)
                continue  # with a budget, the hold is in it: waited out (and told) before the next call
            if status >= 500:
                if attempt > self.max_retries or not (idempotent or status in (502, 503, 504)):
                    raise ServerError(
                        f"{self.provider} had a server error ({status}).", provider=self.provider, status=status
                    )
                self.sleep(self._backoff(attempt))
                continue
            if idempotent and attempt <= self.max_retries and not _readable(resp):
                # a cut-off or garbled answer to a request that is safe to repeat: ask again
                log.warning("%s %s %s: unreadable answer (attempt %d)", self.provider, method, url, attempt)
                self.sleep(self._backoff(attempt))
                continue
            return resp

    def _spend(self, budget: Budget, cost: int = 1) -> None:
        """Book this call in the shared budget, waiting out a short hold and stopping at a long one."""
        while True:
            wait, why = budget.take(cost)
            if wait <= 0:
                return
            if why == "day" or wait > self.max_wait:
                raise RateLimited(
                    f"Today's allowance of calls to {self.provider} is used up; syncing resumes when it renews."
                    if why == "day" else f"{self.provider} asked us to wait {_duration(wait)}; syncing resumes then.",
                    retry_after=wait, daily=True, provider=self.provider, status=429)
            if why == "blocked":
                self._tell_wait(wait)
            log.info("%s: waiting %.1f s for the shared allowance (%s)", self.provider, wait, why)
            budget.pause(wait, self.sleep)

    def _tell_wait(self, seconds: float) -> None:
        if self.on_wait is not None and seconds >= 1:
            self.on_wait(seconds, self.provider)

    @staticmethod
    def body(resp: httpx.Response) -> Any:
        """An answer's JSON, money as Decimal: the body already parsed when it was checked, else parsed now
        (ValueError or UnicodeDecodeError when it is not JSON)."""
        if _PARSED in resp.extensions:
            return resp.extensions.pop(_PARSED)
        return json.loads(resp.content, parse_float=Decimal)

    def json(self, method: str, url: str, **kw: Any) -> Any:
        resp = self.request(method, url, **kw)
        return parse_json(resp, self.provider)

    def _retry_after(self, resp: httpx.Response, attempt: int) -> float:
        """The provider's Retry-After; without one (Zoho's minute), a sixth of the limiter's window at least,
        so the retries span the window instead of all falling inside it."""
        value = resp.headers.get("Retry-After")
        try:
            if value is not None:
                return max(0.0, float(value))
        except ValueError:
            pass
        return max(self._backoff(attempt), self.limiter.window / 6)

    @staticmethod
    def _backoff(attempt: int) -> float:
        return min(30.0, 0.25 * 2 ** (attempt - 1)) * (0.5 + random.random() / 2)

    def close(self) -> None:
        if self.budget is not None:
            self.budget.close()
        self._http.close()


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} minutes"
    return f"{seconds / 3600:.1f} hours"


_PARSED = "crossledger.json"  # where _readable leaves the body it parsed, for ApiClient.body


def _readable(resp: httpx.Response) -> bool:
    """False for a JSON answer whose body does not parse (truncated or garbled on the way). The body parsed
    to tell is kept on the response, so the connector does not parse it a second time (ApiClient.body)."""
    if not resp.content or "json" not in resp.headers.get("content-type", "json"):
        return True
    try:
        resp.extensions[_PARSED] = json.loads(resp.content, parse_float=Decimal)
    except (ValueError, UnicodeDecodeError):
        return False
    return True


def parse_json(resp: httpx.Response, provider: str) -> Any:
    if not resp.content:
        return None
    try:
        return resp.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise TransportError(
            f"{provider} sent an answer that could not be read (status {resp.status_code}).",
            provider=provider,
            status=resp.status_code,
        ) from exc


def raise_for(resp: httpx.Response, provider: str, error: ConnectorError) -> None:
    """Helper for connectors: log the redacted body then raise the typed error."""
    log.warning("%s error %d: %s", provider, resp.status_code, redact(resp.text[:500]))
    raise error


def make_api_client(
    conn: Any,
    tokens: TokenStore,
    *,
    provider: str,
    limits: Any,
    refresh: RefreshFn | None,
    default_base_url: str = "",
    margin: float = 0.0,
    transport: httpx.BaseTransport | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    client_class: type[ApiClient] = ApiClient,
    **options: Any,
) -> ApiClient:
    """The client every connector builds the same way.

    The connection's base URL wins over the provider's (sandboxes, other data centres); the limiter is
    sized from the connector's ``limits`` with ``margin`` seconds added to each window, so our clock and
    the provider's never disagree at the edge of one.
    """
    return client_class(
        provider=provider,
        connection_id=conn.id,
        base_url=conn.base_url or default_base_url,
        tokens=tokens,
        refresh=refresh,
        limiter=RateLimiter(limits.requests, limits.window_seconds + margin, clock=clock, sleep=sleep),
        transport=transport,
        sleep=sleep,
        **options,
    )
