"""The base of the parts a provider's sandbox class is assembled from.

A provider's imitation is one class (``HubSpotSandbox``...) made of several parts, one per concern
(OAuth, limits, records, search...), each in its own module. A part calls what other parts define
through ``self``; to a type checker those names are unknown until the parts are combined, so a part
answers them as ``Any`` while type checking. At run time this adds nothing to ``SandboxApp``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from app.sandbox.base import SandboxApp


class SandboxPart(SandboxApp):
    """One concern of a provider's sandbox; combined with the others into the provider's class."""

    if TYPE_CHECKING:
        def __getattr__(self, name: str) -> Any: ...
