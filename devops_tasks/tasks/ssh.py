"""``ssh.*``: what only an SSH fleet needs, starting with pinning its hosts' keys."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from invoke import Collection, Context

from ..output import Output
from ._command import command
from ._context import project_for, settings_for

if TYPE_CHECKING:
    from ..platforms.ssh import SshPlatform

ENV_HELP = "Environment whose ssh section names the hosts (default: `environment` in config)."


def _fleet(c: Any, env: str | None) -> SshPlatform:
    """The ssh section of ``env`` (ssh.hosts, ssh.known_hosts...), whatever it deploys to."""
    from ..platforms.ssh import SshPlatform  # noqa: PLC0415 - `devops --list` never loads it

    return SshPlatform(project_for(c), settings_for(c, env, SshPlatform.name), c)


def _show_trust(result: Mapping[str, Any], out: Output) -> None:
    if not result["hosts"]:
        out.line(f"Every host of ssh.hosts is in {result['known_hosts']} already.")
        return
    for host in result["hosts"]:
        verdict = "pinned" if host["pinned"] else "already known, the same keys: nothing to do"
        out.line(f"{host['host']}: {verdict}", style="bold green" if host["pinned"] else "bold")
        for key in host["fingerprints"]:
            mark = "pinned" if key["pinned"] else ""
            out.line(f"  {key['fingerprint']}  {key['type']}  {mark}".rstrip())
    if any(host["pinned"] for host in result["hosts"]):
        out.line(f"Saved to {result['known_hosts']}")


@command(
    human=_show_trust,
    help={
        "host": "The host, as ssh.hosts writes it, or host, or host:port "
        "(default: every host known_hosts does not list yet).",
        "fingerprint": "Pin only if the host offers this key (SHA256:..., as its owner gave it).",
        "env": ENV_HELP,
    },
)
def trust(c: Context, out: Output, host=None, fingerprint=None, env=None) -> dict[str, Any]:
    """Show a host's key fingerprints and pin them in ssh.known_hosts (never over a changed key)."""
    return _fleet(c, env).trust(host, fingerprint)


ns = Collection("ssh", trust)
