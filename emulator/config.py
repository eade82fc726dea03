"""The emulator's settings: identity checks, limits, device groups, faults.

Both dataclasses are frozen and validated when built; the emulator swaps in
a new copy to change them at run time. ``config_to_json`` and
``patch_config`` translate to and from the ``/_emulator/config`` body.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from emulator.limits import parse_limits
from localdev.tokens import TokenSigner

__all__ = [
    "DEFAULT_AUDIENCES",
    "DEFAULT_DEVICE_GROUPS",
    "PARTIAL_FAILURE_MODES",
    "EmulatorConfig",
    "Faults",
    "config_to_json",
    "patch_config",
]

DEFAULT_AUDIENCES = (
    "https://api.securitycenter.microsoft.com",
    "https://api.security.microsoft.com",
)
# The seed data's device groups, by name.
DEFAULT_DEVICE_GROUPS: Mapping[str, str] = {
    "Servers": "4127",
    "Finance Workstations": "4131",
    "Domain Controllers": "4133",
    "Developer Workstations": "4140",
    "Kiosks": "4152",
}
PARTIAL_FAILURE_MODES = frozenset({"none", "found"})

_LIMIT_FIELDS = ("batch_delete_limits", "list_limits", "import_limits")
_PATCHABLE = frozenset(
    {*_LIMIT_FIELDS, "accepted_audiences", "exposure", "partial_failure", "faults"}
)
_FAULT_TYPES: Mapping[str, type] = {
    "latency_s": float,
    "error_rate": float,
    "error_after_commit": bool,
    "drop_rate": float,
    "force_429": int,
    "retry_after_s": int,
    "seed": int,
}


@dataclass(frozen=True)
class Faults:
    """Trouble to inject into ``/api/`` calls.

    `error_rate` and `drop_rate` are fractions of calls (0 to 1) drawn from a
    random generator seeded with `seed`. With `error_after_commit`, a faulted
    call does its work before it fails. `force_429` is how many of the next
    calls are throttled whatever the budget, each with `retry_after_s`.
    """

    latency_s: float = 0.0
    error_rate: float = 0.0
    error_after_commit: bool = False
    drop_rate: float = 0.0
    force_429: int = 0
    retry_after_s: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("error_rate", "drop_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"faults.{name} must be between 0 and 1")
        for name in ("latency_s", "force_429", "retry_after_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"faults.{name} must not be negative")


@dataclass(frozen=True)
class EmulatorConfig:
    """How the emulated tenant authenticates, limits and misbehaves.

    `exposure` maps an app ID to the device-group IDs it may act on; an app
    that is missing or mapped to None may act on every group. `app_names`
    gives display names for apps that submit indicators. `clock` returns
    epoch seconds and drives both expiry and rate limits. Raises ValueError
    when a value is out of range or a limit string does not parse.
    """

    signer: TokenSigner
    accepted_audiences: tuple[str, ...] = DEFAULT_AUDIENCES
    batch_delete_limits: str = "30/60s,1500/3600s"
    list_limits: str = "100/60s,1500/3600s"
    import_limits: str = "30/60s"
    exposure: dict[str, frozenset[str] | None] = field(default_factory=dict)
    partial_failure: str = "none"
    faults: Faults = field(default_factory=Faults)
    device_groups: Mapping[str, str] = field(
        default_factory=lambda: dict(DEFAULT_DEVICE_GROUPS)
    )
    app_names: Mapping[str, str] = field(default_factory=dict)
    clock: Callable[[], float] = time.time

    def __post_init__(self) -> None:
        for name in _LIMIT_FIELDS:
            parse_limits(getattr(self, name))
        if self.partial_failure not in PARTIAL_FAILURE_MODES:
            raise ValueError(
                f"partial_failure must be one of {sorted(PARTIAL_FAILURE_MODES)}"
            )

        object.__setattr__(self, "accepted_audiences", tuple(self.accepted_audiences))
        exposure = {app: _group_set(groups) for app, groups in self.exposure.items()}
        object.__setattr__(self, "exposure", exposure)


def _group_set(groups: Iterable[str] | None) -> frozenset[str] | None:
    return None if groups is None else frozenset(str(group) for group in groups)


def config_to_json(config: EmulatorConfig) -> dict[str, Any]:
    """The settings that ``/_emulator/config`` shows and accepts."""
    return {
        "accepted_audiences": list(config.accepted_audiences),
        "batch_delete_limits": config.batch_delete_limits,
        "list_limits": config.list_limits,
        "import_limits": config.import_limits,
        "exposure": {
            app: None if groups is None else sorted(groups)
            for app, groups in config.exposure.items()
        },
        "partial_failure": config.partial_failure,
        "faults": {name: getattr(config.faults, name) for name in _FAULT_TYPES},
    }


def patch_config(config: EmulatorConfig, patch: Mapping[str, Any]) -> EmulatorConfig:
    """Apply a JSON patch shaped like `config_to_json`; raises ValueError.

    `exposure` is replaced as a whole; `faults` is merged key by key.
    """
    unknown = set(patch) - _PATCHABLE
    if unknown:
        raise ValueError(f"unknown config keys: {sorted(unknown)}")

    changes = dict(patch)
    if "faults" in changes:
        changes["faults"] = _patched_faults(config.faults, changes["faults"])
    if "exposure" in changes:
        changes["exposure"] = _exposure_from_json(changes["exposure"])
    if "accepted_audiences" in changes:
        changes["accepted_audiences"] = _string_list(
            changes["accepted_audiences"], "accepted_audiences"
        )
    for name in (*_LIMIT_FIELDS, "partial_failure"):
        if name in changes and not isinstance(changes[name], str):
            raise ValueError(f"{name} must be a string")
    return replace(config, **changes)


def _patched_faults(faults: Faults, patch: Any) -> Faults:
    if not isinstance(patch, Mapping):
        raise ValueError("faults must be an object")
    unknown = set(patch) - set(_FAULT_TYPES)
    if unknown:
        raise ValueError(f"unknown fault keys: {sorted(unknown)}")

    for name, value in patch.items():
        _check_fault_value(name, value)
    return replace(faults, **patch)


def _check_fault_value(name: str, value: Any) -> None:
    wanted = _FAULT_TYPES[name]
    if wanted is bool:
        valid = isinstance(value, bool)
    elif wanted is int:
        valid = isinstance(value, int) and not isinstance(value, bool)
    else:
        valid = isinstance(value, int | float) and not isinstance(value, bool)
    if not valid:
        raise ValueError(f"faults.{name} must be a {wanted.__name__}")


def _exposure_from_json(value: Any) -> dict[str, frozenset[str] | None]:
    if not isinstance(value, Mapping):
        raise ValueError("exposure must be an object of app ID to group IDs or null")
    return {
        str(app): None if groups is None else frozenset(_string_list(groups, app))
        for app, groups in value.items()
    }


def _string_list(value: Any, name: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{name} must be a list of strings")
    return value
