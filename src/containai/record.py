"""``Record``: immutable value objects without ``typing.NamedTuple``.

``typing`` (with the ``re`` it imports) costs ``cai list`` ~4 ms, and each NamedTuple
class is built by ``exec``. The few value objects on that path (engine selection,
listed containers) derive from ``Record`` instead: fields are ``__slots__``, set once
in ``__init__``; equality, hash and repr go by the fields.
"""

from __future__ import annotations


class Record:
    __slots__ = ()

    def _names(self) -> tuple[str, ...]:
        names: tuple[str, ...] = getattr(type(self), "__slots__", ())
        return names

    def _values(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self._names())

    def _set(self, **values: object) -> None:
        for name, value in values.items():
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable (tried to set {name})")

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Record)
            and type(other) is type(self)
            and (self._values() == other._values())
        )

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        fields = ", ".join(f"{n}={getattr(self, n)!r}" for n in self._names())
        return f"{type(self).__name__}({fields})"
