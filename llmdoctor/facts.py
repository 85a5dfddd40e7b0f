"""Facts: what probes found, typed, serialisable, and replayable.

Each probe returns one frozen dataclass. ``Facts`` maps probe names to
``ProbeResult``s; a probe that could not produce its value leaves ``value`` None
and says why in ``reason`` (timeout, crash, exception), never raising.

Fact dataclasses round-trip through JSON (``dump`` / ``load``) so that a report
saved on a user's machine can be judged again with today's checks (``--replay``).
"""

from __future__ import annotations

import collections.abc
import dataclasses
import enum
import types
import typing
from dataclasses import dataclass
from typing import Any, Iterator, Mapping


@dataclass(frozen=True)
class ProbeResult:
    name: str
    value: Any = None  #: the probe's fact dataclass, or None when unknown
    reason: str | None = None  #: why value is None
    kind: str | None = None  #: "timeout" | "crash" | "exception" when the probe broke
    duration_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.value is not None


class Facts(Mapping[str, ProbeResult]):
    """Read-only mapping of probe name to result; ``facts.get_value(name)`` is the common call."""

    def __init__(self, results: Mapping[str, ProbeResult] | None = None):
        self._results = dict(results or {})

    def __getitem__(self, key: str) -> ProbeResult:
        return self._results[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._results)

    def __len__(self) -> int:
        return len(self._results)

    def value(self, name: str):
        result = self._results.get(name)
        return None if result is None else result.value

    def reason(self, name: str) -> str:
        result = self._results.get(name)
        if result is None:
            return f"probe {name!r} did not run"
        return result.reason or ""


# --- JSON round trip -------------------------------------------------------

def dump(obj: Any) -> Any:
    """A fact value as plain JSON data (dataclasses become dicts, tuples lists)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: dump(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, (list, tuple)):
        return [dump(x) for x in obj]
    if isinstance(obj, dict):
        return {str(k): dump(v) for k, v in obj.items()}
    return obj


_LEAVES = (str, int, float, bool)


def load(tp: Any, data: Any) -> Any:
    """Rebuild a value of type ``tp`` from :func:`dump` output. Unknown keys are ignored,
    missing ones take the field default (so older reports replay on newer checks). A value of
    the wrong shape (a list where a string belongs, a string where a record does) raises
    TypeError, so a damaged or hostile report cannot smuggle nesting or types past it."""
    if data is None:
        return None
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        errors = []
        for arg in args:  # the first member the data fits
            try:
                return load(arg, data)
            except (TypeError, ValueError, KeyError) as exc:
                errors.append(exc)
        raise TypeError(f"{type(data).__name__} fits none of {tp}")
    if dataclasses.is_dataclass(tp):
        if not isinstance(data, dict):
            raise TypeError(f"expected an object for {tp.__name__}, got {type(data).__name__}")
        hints = typing.get_type_hints(tp)
        kwargs = {}
        for f in dataclasses.fields(tp):
            if f.name in data:
                kwargs[f.name] = load(hints[f.name], data[f.name])
        return tp(**kwargs)
    if origin in (tuple, list):
        if not isinstance(data, list):
            raise TypeError(f"expected a list, got {type(data).__name__}")
        args = typing.get_args(tp)
        if origin is list or (len(args) == 2 and args[1] is Ellipsis):
            out = [load(args[0], x) for x in data]
            return out if origin is list else tuple(out)
        if len(args) != len(data):
            raise TypeError(f"expected {len(args)} items, got {len(data)}")
        return tuple(load(a, x) for a, x in zip(args, data))
    if origin in (dict, collections.abc.Mapping):
        if not isinstance(data, dict):
            raise TypeError(f"expected an object, got {type(data).__name__}")
        key, val = typing.get_args(tp)
        return {load(key, k): load(val, v) for k, v in data.items()}
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return tp(data)
    if tp is float and isinstance(data, int) and not isinstance(data, bool):
        return float(data)
    if tp in _LEAVES:
        if not isinstance(data, tp) or (tp is not bool and isinstance(data, bool)):
            raise TypeError(f"expected {tp.__name__}, got {type(data).__name__}")
        return data
    if tp is Any:
        return data
    raise TypeError(f"cannot read a {tp!r} from saved facts")
