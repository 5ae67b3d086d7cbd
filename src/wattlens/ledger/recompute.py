"""Recompute receipts from the inputs their records keep: catches an edited figure, not a wrong measurement.

The log proves a record was not changed after it was logged; it cannot say whether the figures
written at the time follow from the call. This does, for what a record keeps:

- an estimated receipt's IT energy (`energy_wh`) is estimated again from the record's model,
  tokens, boundary and serving assumptions (hardware, GPUs, concurrency, parameters) with this
  package's estimator, when the record names the factor tables this package ships;
- every receipt's location-based carbon must equal its facility energy times the grid intensity
  the receipt names (bound by bound), whatever the method.

A receipt from the meter (measured by hardware counters, or estimated by its CPU and DRAM models
in a window) cannot be recomputed from tokens. It keeps its window instead (since schema_version 2:
seconds, and per device its kind, energy and this window's share), and that must add up: the shares
sum to the energy, no share exceeds its device, no device draws more than a device of its kind can,
the window is no longer than the request, and the boundary names the kinds measured. An estimate
relabelled `measured` keeps no window, and shows; a window made up to fit, consistently, does not.
The facility multiplier (PUE) and water factors of the place are not kept in the record, so
`facility_wh` and `water_ml` are not recomputed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from wattlens.errors import WattlensError

if TYPE_CHECKING:
    from wattlens.factors import FactorSet

BOUNDS = ("low", "mid", "high")
REL_TOL = 2e-5  # receipts keep 6 significant digits
CARBON_REL_TOL = 2e-3  # and the grid intensity 3 decimals
METHODS = ("estimated", "measured", "mixed")
WINDOWS_SINCE = 2  # the schema_version from which a measured receipt keeps its window
# A mean power no single device of the kind draws (loose on purpose: a plausibility bound, not a
# model): an accelerator (B200 1,000 W, MI355X 1,400 W TDP), a CPU sensor covering up to a
# two-socket host (500 W parts), its DRAM, a whole host (DGX B200: 14.3 kW maximum).
MAX_W = {"accelerator": 2_000.0, "cpu": 1_500.0, "dram": 500.0, "host": 15_000.0}
PART_OF = {"accelerator": "accelerator", "cpu": "host", "dram": "host", "host": "host"}


@dataclass(frozen=True, slots=True)
class Difference:
    seq: int
    record_id: str
    detail: str


@dataclass(slots=True)
class Recomputation:
    checked: int = 0  # estimated receipts whose energy was recomputed
    derived: int = 0  # receipts whose carbon was checked against their energy and grid intensity
    measured: int = 0  # receipts from the meter (measured, or its sensor models) whose window was checked
    other_factors: dict[str, int] = field(default_factory=dict)  # factor versions this package does not ship
    no_receipt: int = 0
    differences: list[Difference] = field(default_factory=list)


def _close(a: float, b: float, rel: float) -> bool:
    return abs(a - b) <= rel * max(abs(a), abs(b)) + 1e-12


def _interval(d: Any) -> tuple[float, float, float] | None:
    if not isinstance(d, dict) or not all(isinstance(d.get(k), int | float) for k in BOUNDS):
        return None
    return (float(d["low"]), float(d["mid"]), float(d["high"]))


def _boundary(parts: Iterable[str]) -> str | None:
    from wattlens.estimate import BOUNDARY_PARTS

    have = {p for p in parts if p != "embodied"}
    for name, want in BOUNDARY_PARTS.items():
        if set(want) == have:
            return name
    return None


def _candidates(record: dict[str, Any], fp: dict[str, Any]) -> list[dict[str, Any]]:
    """The requests the recorded assumptions can mean (at most four): the energy must equal one of them.

    A receipt keeps the hardware, GPU count and concurrency it assumed, but not whether they were
    given by the operator or taken from the model's serving profile (which widens the interval);
    both readings are tried.
    """
    a = fp.get("assumptions") or {}
    warnings = set(fp.get("warnings") or [])
    tokens = fp.get("tokens") or record.get("tokens") or {}
    base: dict[str, Any] = {
        "model": str(record.get("model_served") or fp.get("model") or ""),
        "input_tokens": int(tokens.get("input", 0)),
        "output_tokens": int(tokens.get("output", 0)),
        "cached_input_tokens": int(tokens.get("cached_input", 0)),
        "reasoning_tokens": int(tokens.get("reasoning", 0)),
    }
    if "model-not-in-catalogue" in warnings and a.get("active_params_b") is not None:
        base["active_params_b"] = float(a["active_params_b"])
        base["precision"] = a.get("precision")
    if a.get("serving_profile") == "given" and a.get("batch_per_gpu") and a.get("gpus"):
        base["batch_size"] = float(a["batch_per_gpu"]) * int(a["gpus"])
    hardware = [None] if "hardware-assumed" in warnings else [None, a.get("hardware")]
    gpus = [None, a.get("gpus")]
    out = []
    for h in dict.fromkeys(hardware):
        for g in dict.fromkeys(gpus):
            out.append(base | {"hardware": h, "gpus": g})
    return out


def _energy(request: dict[str, Any], boundary: str, factors: FactorSet) -> tuple[float, float, float] | None:
    from wattlens.receipt import LLMRequest, Place, estimate_footprint

    try:
        # IT energy does not depend on the place (facility and grid come after it): any zone of the tables will do.
        fp = estimate_footprint(
            LLMRequest(**request), Place(zone="FR"), boundary=boundary, factors=factors, unknown_generic=True
        )
    except (WattlensError, ValueError, TypeError):
        return None
    e = fp.energy_wh
    return (e.low, e.mid, e.high)


def recompute(rows: Iterable[tuple[int, str]], factors: FactorSet) -> Recomputation:
    """Check every record (seq, body JSON) against what its inputs give; name each one that differs."""
    result = Recomputation()
    for seq, body in rows:
        try:
            record = json.loads(body)
        except ValueError:
            continue  # `verify` names a body that is not JSON
        fp = record.get("footprint") if isinstance(record, dict) else None
        if not isinstance(fp, dict):
            result.no_receipt += 1
            continue
        rid = str(record.get("id"))
        try:
            _check_record(seq, rid, record, fp, factors, result)
        except (ValueError, TypeError, AttributeError, KeyError) as e:  # a field of the wrong shape: named, not a crash
            result.differences.append(Difference(seq, rid, f"the receipt is malformed ({type(e).__name__}: {str(e)[:120]})"))
    return result


def _same_tokens(top: Any, own: dict[str, Any]) -> bool:
    """The record's token counts are its receipt's: a count deleted from either reads as 0, as reports read it."""
    return isinstance(top, dict) and all(top.get(k, 0) == own.get(k, 0) for k in {*top, *own})


def _check_record(
    seq: int, rid: str, record: dict[str, Any], fp: dict[str, Any], factors: FactorSet, result: Recomputation
) -> None:
    _check_carbon(seq, rid, fp, result)
    top, own = record.get("tokens"), fp.get("tokens")
    if top is not None and isinstance(own, dict) and not _same_tokens(top, own):  # reports sum the record's own
        result.differences.append(Difference(seq, rid, f"the record's tokens {top} are not its receipt's {own}"))
    method = fp.get("method")
    if method not in METHODS:
        result.differences.append(Difference(seq, rid, f"its method {method!r} is none of {', '.join(METHODS)}"))
        return
    if method != "estimated" or "measurement" in fp:  # from the meter: counters, or its models of the CPU and DRAM
        _check_window(seq, rid, record, fp, result)
        return
    version = str(fp.get("factors_version") or record.get("factors_version") or "?")
    if version != factors.version:
        result.other_factors[version] = result.other_factors.get(version, 0) + 1
        return
    _check_energy(seq, rid, record, fp, factors, result)


def _check_carbon(seq: int, rid: str, fp: dict[str, Any], result: Recomputation) -> None:
    facility = _interval(fp.get("facility_wh"))
    carbon = _interval((fp.get("carbon_g") or {}).get("location"))
    intensity = (fp.get("grid") or {}).get("intensity_g_per_kwh")
    if facility is None or carbon is None or not isinstance(intensity, int | float):
        result.differences.append(Difference(seq, rid, "the receipt lacks facility energy, carbon or grid intensity"))
        return
    result.derived += 1
    for bound, f_wh, c_g in zip(BOUNDS, facility, carbon, strict=True):
        want = f_wh * float(intensity) / 1000.0
        if not _close(c_g, want, CARBON_REL_TOL):
            result.differences.append(
                Difference(
                    seq,
                    rid,
                    f"carbon_g.location.{bound} is {c_g:.6g} g but facility {f_wh:.6g} Wh at "
                    f"{float(intensity):g} g/kWh gives {want:.6g} g",
                )
            )
            return


def _check_energy(
    seq: int, rid: str, record: dict[str, Any], fp: dict[str, Any], factors: FactorSet, result: Recomputation
) -> None:
    stored = _interval(fp.get("energy_wh"))
    boundary = _boundary(fp.get("boundary") or [])
    if stored is None or boundary is None:
        result.differences.append(Difference(seq, rid, "the receipt's energy or boundary is malformed"))
        return
    result.checked += 1
    first: tuple[float, float, float] | None = None
    for request in _candidates(record, fp):
        got = _energy(request, boundary, factors)
        if got is None:
            continue
        first = first or got
        if all(_close(s, g, REL_TOL) for s, g in zip(stored, got, strict=True)):
            return
    if first is None:
        result.differences.append(Difference(seq, rid, "its inputs no longer give a receipt (model or tokens invalid)"))
        return
    result.differences.append(
        Difference(
            seq,
            rid,
            f"energy_wh is {stored[1]:.6g} [{stored[0]:.6g}, {stored[2]:.6g}] Wh but its model, tokens and "
            f"assumptions give {first[1]:.6g} [{first[0]:.6g}, {first[2]:.6g}] Wh",
        )
    )


def _check_window(seq: int, rid: str, record: dict[str, Any], fp: dict[str, Any], result: Recomputation) -> None:
    """A measured receipt's energy must follow from the window it keeps (see the module's docstring)."""
    why = _window_problem(fp.get("measurement"), record, fp)
    if why:
        result.differences.append(Difference(seq, rid, f"labelled {fp.get('method')} but {why}"))
    else:
        result.measured += 1


def _window_problem(m: Any, record: dict[str, Any], fp: dict[str, Any]) -> str | None:
    if not isinstance(m, dict) or not isinstance(m.get("devices"), dict) or not m["devices"]:
        # Every field is the forger's to edit, schema_version too: so no version excuses a missing window.
        return (
            f"it keeps no measurement window: an estimate relabelled, or a receipt from before windows "
            f"were kept (schema_version < {WINDOWS_SINCE})"
        )
    window_s, energy = m.get("window_s"), _interval(fp.get("energy_wh"))
    if not isinstance(window_s, int | float) or not window_s > 0 or energy is None:
        return "its window's seconds or its energy are malformed"
    latency = record.get("latency_s")
    if isinstance(latency, int | float) and window_s > 1.1 * latency + 1.0:
        return f"its window ({window_s:g} s) is longer than the request ({latency:g} s)"
    total_j, parts = 0.0, set[str]()
    for device, d in m["devices"].items():
        kind = d.get("kind") if isinstance(d, dict) else None
        dev_j, own_j = (d.get("device_j"), d.get("attributed_j")) if isinstance(d, dict) else (None, None)
        if kind not in MAX_W or not isinstance(dev_j, int | float) or not isinstance(own_j, int | float):
            return f"its device {str(device)[:40]!r} is malformed"
        if own_j < 0 or own_j > dev_j * (1 + REL_TOL) + 1e-9:
            return f"{str(device)[:40]} gives the window {own_j:g} J of the {dev_j:g} J it measured"
        if dev_j / window_s > MAX_W[kind]:
            watts = dev_j / window_s
            return f"{str(device)[:40]} would have drawn {watts:.0f} W, more than a {kind} can ({MAX_W[kind]:.0f} W)"
        total_j, parts = total_j + own_j, parts | {PART_OF[kind]}
    if not _close(total_j / 3600.0, energy[1], 1e-4):
        return f"its energy {energy[1]:.6g} Wh is not its devices' shares ({total_j:.6g} J = {total_j / 3600:.6g} Wh)"
    boundary = {p for p in fp.get("boundary") or [] if p in ("accelerator", "host")}
    if boundary != parts:
        return f"its boundary {sorted(boundary)} is not the kinds it measured {sorted(parts)}"
    return None
