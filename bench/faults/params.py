"""The fault suite's parameters: scaled limits, latency, tenant sizes, caps.

Defender's windows are scaled by 1/20 (30 BatchDelete calls per 3 s, 1,500
per 180 s) on both the app and the emulator, so a fault that would cost
minutes against the real service costs seconds here. Call latency is not
scaled: it is what one call to Defender takes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

__all__ = ["FULL", "QUICK", "FaultParams"]

TIME_SCALE = 3 / 60
REAL_LINGER_S = 1.0


@dataclass(frozen=True)
class FaultParams:
    """One configuration of the suite; `FULL` and `QUICK` are the two in use."""

    mode: str
    batch_delete_limits: str
    list_limits: str
    latency_s: float
    linger_s: float
    # The tenant holds this many seed indicators; requests name `requested`.
    tenant_size: int
    requested: int
    # A scenario still unfinished after this long is cut off and scored.
    cap_s: float
    # How long a worker process may run at most (it is stopped sooner).
    worker_s: float
    fault_seed: int = 7

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "time_scale": TIME_SCALE}


FULL = FaultParams(
    mode="full",
    batch_delete_limits="30/3s,1500/180s",
    list_limits="100/3s,1500/180s",
    latency_s=0.1,
    linger_s=REAL_LINGER_S * TIME_SCALE,
    tenant_size=4_000,
    requested=3_000,
    cap_s=45.0,
    worker_s=300.0,
)

QUICK = replace(FULL, mode="quick", tenant_size=1_500, requested=1_000, cap_s=30.0)
