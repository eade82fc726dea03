"""What an ``/api/`` handler gets: the request, the caller and the tenant."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from werkzeug.wrappers import Request

from emulator.auth import Caller, can_change, can_see
from emulator.config import EmulatorConfig
from emulator.store import IndicatorStore

__all__ = ["ApiContext"]


@dataclass(frozen=True)
class ApiContext:
    """One call's view of the tenant; built and used under the emulator's lock.

    `now` is epoch seconds from the config's clock; `base_url` is the scheme
    and host the client used, without a trailing slash.
    """

    request: Request
    caller: Caller
    config: EmulatorConfig
    store: IndicatorStore
    now: float
    base_url: str

    def visible(self, indicator_id: str) -> dict[str, Any] | None:
        """The indicator if it exists and the caller's role shows it."""
        row = self.store.get(indicator_id)
        return row if row is not None and can_see(self.caller, row) else None

    def changeable(self, row: dict[str, Any]) -> bool:
        """Whether the caller is exposed to every device group of `row`."""
        return can_change(self.config.exposure.get(self.caller.app_id), row)
