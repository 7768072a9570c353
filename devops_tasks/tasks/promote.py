"""``promote``: make the release tested in one environment live in another, unbuilt."""

from __future__ import annotations

from typing import Any

from invoke import Context

from ..errors import DevopsError, ErrorCode
from ..ids import check_environment
from ..output import Output
from ._command import command
from ._context import deployer_for
from .deploy import show_deployment

HELP = {
    "from": "Environment whose release is promoted (its live one, unless --release).",
    "to": "Environment that gets it (default: `environment` in config, else production).",
    "release": "Promote this deployment id or release of --from instead of its live one.",
    "message": "Why (kept in the record, the hosts' lock and their audit log).",
}


@command(human=show_deployment, help=HELP)
def promote(
    c: Context, out: Output, from_=None, to=None, release=None, message=None
) -> dict[str, Any]:
    """Make the release live in --from live in --to too: the same bytes, nothing rebuilt."""
    if not from_:
        raise DevopsError(
            ErrorCode.INVALID_ARGUMENT,
            "promote needs --from, the environment whose release goes live",
            "Run `devops promote --from staging --to production`.",
        )
    if to is not None:
        check_environment(to, "--to")
    return deployer_for(c, out, to).promote(from_, release, message).result()
