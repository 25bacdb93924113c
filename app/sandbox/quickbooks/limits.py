"""QBO's gate, limits and faults: token, company and throttling (401, 403, 429), request-id replays."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal
from typing import Any

from app.sandbox.base import HttpError, Request, Response
from app.sandbox.common import dumps
from app.sandbox.quickbooks.core import QboCore
from app.sandbox.quickbooks.faults import QboFault, QboResponse
from app.sandbox.quickbooks.schema import REQUESTID_TTL


class QboLimits(QboCore):
    """Who may call, how often, and how a refusal is worded."""

    def not_found_body(self, req: Request) -> Any:
        return {"Fault": {"Error": [{"Message": "Unsupported Operation",
                                     "Detail": f"Operation {req.method} {req.path} is not supported.",
                                     "code": "500", "element": ""}], "type": "ValidationFault"},
                "time": self.stamp()}

    def scale_limits(self, factor: float) -> None:
        super().scale_limits(factor)
        self.batch_limit = (int(self.batch_limit[0] * factor), self.batch_limit[1])

    def dispatch(self, req: Request) -> Response:
        tid = str(uuid.uuid4())
        try:
            resp = super().dispatch(req)
        except HttpError as err:
            err.response.headers.setdefault("intuit_tid", tid)
            raise
        resp.headers.setdefault("intuit_tid", tid)
        return resp

    # -- request plumbing -----------------------------------------------------------------------
    def _fail(self, err: QboFault) -> HttpError:
        return HttpError(err.status, {"Fault": err.fault(), "time": self.stamp()})

    def _enter(self, req: Request, *, batch: bool = False) -> dict[str, Any]:
        """Token, company and rate limit, in QBO's order: 401, then 403, then 429."""
        self.authenticate(req, "Bearer")
        realm = req.params["realm"]
        co = self.state["companies"].get(realm)
        if co is None:
            raise HttpError(403, {"Fault": {"Error": [{
                "Message": "message=ApplicationAuthorizationFailed; errorCode=003100; statusCode=403",
                "Detail": f"The company {realm} is not available to this connection.", "code": "3100",
                "element": ""}], "type": "AuthorizationFault"}, "time": self.stamp()})
        minor = req.arg("minorversion")
        if minor is not None and not minor.strip().isdigit():
            raise self._fail(QboFault("2010", "Request has invalid or unsupported property",
                                      f"Invalid minorversion {minor!r}", "minorversion"))
        limit, window = self.rate_limit or (500, 60.0)
        if self.check_rate(f"realm:{realm}", limit, window) is not None or (
                batch and self.check_rate(f"batch:{realm}", *self.batch_limit) is not None):
            raise HttpError(429, {"Fault": {"Error": [{
                "Message": "message=ThrottleExceeded; errorCode=003001; statusCode=429",
                "Detail": "The request limit was reached.", "code": "3001", "element": ""}],
                "type": "ThrottlingFault"}, "time": self.stamp()})
        return co

    def _body(self, req: Request) -> Any:
        try:
            text = req.body.decode("utf-8")
        except UnicodeDecodeError:
            raise self._fail(QboFault("500", "Unsupported Operation",
                                      "The request body is not valid UTF-8.")) from None
        if not text.strip():
            raise self._fail(QboFault("2020", "Required param missing, need to supply the required value for "
                                      "the API", "The request has no body"))
        try:
            return json.loads(text, parse_float=Decimal)
        except ValueError:
            raise self._fail(QboFault("2010", "Request has invalid or unsupported property",
                                      "Request body is not valid JSON")) from None

    def ok(self, body: dict[str, Any]) -> QboResponse:
        return QboResponse(200, {**body, "time": self.stamp()})

    def _replay(self, co: dict[str, Any], req: Request, limit: int = 50) -> QboResponse | None:
        """A request id already answered for this company gets the original answer again."""
        rid = req.arg("requestid")
        if rid is None:
            return None
        if not rid or len(rid) > limit:
            raise self._fail(QboFault("2010", "Request has invalid or unsupported property",
                                      f"requestid must be 1 to {limit} characters", "requestid"))
        now = self.now()
        cache = co["requestids"]
        for key in [k for k, v in cache.items() if now - v["at"] > REQUESTID_TTL]:
            del cache[key]
        hit = cache.get(rid)
        if hit is None:
            return None
        return QboResponse(hit["status"], json.loads(hit["body"], parse_float=Decimal))

    def _keep(self, co: dict[str, Any], req: Request, resp: Response) -> Response:
        rid = req.arg("requestid")
        if rid:
            co["requestids"][rid] = {"at": self.now(), "status": resp.status, "body": dumps(resp.body)}
        return resp

