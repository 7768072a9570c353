"""devops-tasks: deploy, audit and roll back sites and services with Invoke.

``from devops_tasks import namespace`` gives the Invoke collection to mount in a
``tasks.py``; the ``devops`` program exposes the same tasks with no tasks.py at all.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .tasks import build_namespace, namespace

__all__ = ["__version__", "build_namespace", "namespace"]
