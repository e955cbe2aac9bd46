"""The principal calls run for: a context variable, so it follows threads (each starts as "local") and asyncio
tasks (each keeps the value it was created with). The compiled module reads it at every call."""

from __future__ import annotations

import contextvars

_current: contextvars.ContextVar[str] = contextvars.ContextVar("cdp_principal", default="local")


class principal:  # noqa: N801 - a context manager, named as the call reads
    """Runs the calls made in this block (this thread or asyncio task) for a principal of the governance policy::

        with cdp.principal("ann"):
            db.profiles.get(pid)   # without the fields ann may not read

    Outside any block calls run as ``"local"`` (an admin). Blocks nest. ``cdp.principal.current()`` names the
    principal in force."""

    def __init__(self, name: str) -> None:
        if not isinstance(name, str) or not name:
            raise TypeError("the principal's name must be a non-empty str")
        self._name = name
        self._tokens: list = []

    def __enter__(self) -> "principal":
        self._tokens.append(_current.set(self._name))
        return self

    def __exit__(self, *exc_info) -> None:
        _current.reset(self._tokens.pop())

    @staticmethod
    def current() -> str:
        return _current.get()
