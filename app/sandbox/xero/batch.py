"""Xero's bulk writes: many elements per call, summarizeErrors, Idempotency-Key replays."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from app.sandbox.base import HttpError, Request, Response
from app.sandbox.common import loads
from app.sandbox.xero.shapes import Invalid, XeroResponse, api_error
from app.sandbox.xero.where import XeroListing


class XeroBatch(XeroListing):
    """Bodies, bulk elements and idempotent replays."""

    def _body(self, req: Request) -> Any:
        if len(req.body) > self.max_body:
            raise HttpError(413, "Request Entity Too Large")
        try:
            return loads(req.body or b"{}")
        except (ValueError, UnicodeDecodeError):
            raise api_error("The request body could not be read as JSON.", number=17,
                            kind="PostDataInvalidException") from None

    def _idempotent(self, req: Request, tenant: dict[str, Any], run: Callable[[], Response]) -> Response:
        """Replay the first answer to an Idempotency-Key instead of writing again."""
        key = req.header("idempotency-key")
        if not key:
            return run()
        if len(key) > 128:
            raise api_error("The Idempotency-Key must be 128 characters or fewer.")
        cache = tenant["idem"]
        now = self.now()
        for old in [k for k, v in cache.items() if v["expires"] < now]:
            cache.pop(old)
        hit = cache.get(key)
        if hit is not None:
            return Response(hit["status"], hit["body"], dict(hit["headers"]), hit["type"])
        try:
            resp = run()
        except HttpError as err:
            resp = err.response
        if resp.status < 500 and resp.status != 429:
            encoded = XeroResponse(resp.status, resp.body).encode().decode() if isinstance(resp.body, dict | list) \
                else resp.encode().decode()
            cache[key] = {"status": resp.status, "body": encoded, "headers": dict(resp.headers),
                          "type": resp.content_type, "expires": now + self.idempotency_ttl}
            self.persist()
            # the text just kept goes out as it is: the same bytes as a replay sends, written once
            return Response(resp.status, encoded, dict(resp.headers), resp.content_type)
        return resp

    def _bulk(self, req: Request, tenant: dict[str, Any], key: str, apply: Callable[[dict[str, Any]], dict],
              failed: Callable[[dict[str, Any], list[str]], dict]) -> Response:
        """Each element on its own, in order. summarizeErrors (default true): any failure makes the whole
        answer a 400 listing only the failures, though the valid elements were saved all the same."""
        body = self._body(req)
        elements = body.get(key) if isinstance(body, dict) else None
        if not isinstance(elements, list) or not elements:
            raise api_error(f"The request must contain {key}.", number=17, kind="PostDataInvalidException")
        summarize = (req.arg("summarizeErrors") or "true").strip().lower() != "false"
        outs, failures = [], []
        for element in elements:
            if not isinstance(element, dict):
                element = {}
            try:
                outs.append(apply(element))
            except Invalid as exc:
                out = failed(element, exc.messages)
                outs.append(out)
                failures.append(out)
        self.persist()
        if summarize and failures:
            raise api_error("A validation exception occurred", failures)
        return XeroResponse(200, self.envelope(key, outs))

