"""devops-tasks: deploy, audit and roll back sites and services with Invoke.

``from devops_tasks import namespace`` gives the Invoke collection to mount in a
``tasks.py``; the ``devops`` program exposes the same tasks with no tasks.py at all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .tasks import build_namespace, namespace

__version__ = "0.1.0"

__all__ = ["__version__", "build_namespace", "namespace"]


def __getattr__(name: str) -> Any:
    """``namespace`` and ``build_namespace``, loaded with Invoke on first use: importing
    one module of the package (``devops_tasks.early``, a platform) does not load them."""
    if name in ("namespace", "build_namespace"):
        from . import tasks  # noqa: PLC0415

        return getattr(tasks, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
