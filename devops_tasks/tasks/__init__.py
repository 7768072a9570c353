"""The devops Invoke namespace: ``deploy``, ``config``, ``infra``, ``ssh`` and top-level operations.

Mount it in your own ``tasks.py`` like any collection::

    from invoke import Collection
    import devops_tasks

    ns = Collection()
    ns.add_collection(devops_tasks.namespace, "ops")   # invoke ops.deploy.local

Defaults live in the collection's configuration under ``devops`` and can be overridden by
the mounting project's config (``invoke.yaml``: ``devops: {env: staging}``) or by flags.
"""

from __future__ import annotations

from invoke import Collection

from . import config, deploy, infra, lock, ops, secrets, ssh, vercel

__all__ = ["DEFAULT_CONFIG", "namespace"]

DEFAULT_CONFIG = {
    "devops": {
        # Environment used when a task gets no --env (None: the config file decides).
        "env": None,
        # Where to look for .devops/ (None: the current directory and its parents).
        "project_dir": None,
        # Make every task behave as if --json was given.
        "json": False,
    }
}


def build_namespace() -> Collection:
    """A fresh copy of the namespace (mutating it never touches another user's copy)."""
    namespace = Collection(
        ops.init,
        ops.build,
        ops.status,
        ops.history,
        ops.logs,
        ops.rollback,
        ops.schema,
    )
    for module in (deploy, secrets, config, infra, lock, ssh, vercel):
        namespace.add_collection(module.ns)
    namespace.configure(DEFAULT_CONFIG)
    return namespace


namespace = build_namespace()
