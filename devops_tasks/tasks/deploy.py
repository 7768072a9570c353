"""``deploy``: ship the build directory; ``deploy`` alone uses the configured platform."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

from invoke import Collection, Context

from ..output import Output
from ..platforms import AVAILABLE
from ._command import command
from ._context import deployer_for

HELP = {
    "env": "Environment to deploy (default: `environment` in config, else production).",
    "dir": "Directory to deploy (default: build.dir from config).",
    "build": "Run build.command first.",
    "message": "Why (kept in the record, the hosts' lock and their audit log).",
    "dry_run": "Only say what would be added, changed and deleted, and the steps; write nothing.",
    "force_deletes": "Delete more objects than max_deletes allows (bucket targets).",
    "wait": "Wait until the CDN's invalidation completes (aws with CloudFront).",
    "skip_checks": "Skip deployment.pre_deploy and require_clean_git (recorded: who, which).",
    "no_cache": "Hash every file again instead of reusing .devops/cache/digests.",
}


def show_deployment(result: Mapping[str, Any], out: Output) -> None:
    if result.get("dry_run"):
        _show_plan(result, out)
        return
    out.line(
        f"{result['action'].capitalize()} {result['id']}: {result['status']}", style="bold green"
    )
    size = result.get("bytes_uploaded")
    duration = result.get("duration_ms")
    out.fields(
        {
            "environment": result["environment"],
            "platform": result["platform"],
            "release": result.get("release"),
            "version": result.get("version"),
            "promoted from": result.get("promoted_from"),
            "message": result.get("message"),
            "url": result.get("url"),
            "files": result.get("files_deployed"),
            "sent": _size(size) if size is not None else None,
            "duration": f"{duration / 1000:.1f} s" if duration is not None else None,
        }
    )
    _show_hosts((result.get("details") or {}).get("hosts") or [], out)
    for warning in (result.get("details") or {}).get("warnings", []):
        out.line(f"warning: {warning}", style="yellow")


def _show_hosts(hosts: list[Mapping[str, Any]], out: Output) -> None:
    """How many hosts ended how, then each host that failed and why (a fleet may be long)."""
    if not hosts:
        return
    counts = Counter(host.get("status", "unknown") for host in hosts)
    out.line(
        f"hosts: {len(hosts)} (" + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) + ")"
    )
    for host in hosts:
        if host.get("status") == "failed":
            out.line(f"  {host['host']}: {host.get('error', 'failed')}", style="yellow")


def _show_plan(result: Mapping[str, Any], out: Output) -> None:
    out.line(f"Dry run: nothing was written ({result['platform']}, {result['environment']})")
    for kind in ("added", "changed", "deleted"):
        group = result.get(kind) or {}
        size = f", {_size(group['bytes'])}" if group.get("bytes") else ""
        out.line(f"{kind}: {group.get('count', 0)}{size}", style="bold")
        for path in group.get("paths", []):
            out.line(f"  {path}")
    for host in result.get("hosts") or []:
        counts = ", ".join(f"{host[k]} {k}" for k in ("added", "changed", "deleted"))
        out.line(f"  {host['host']}: {counts}")
    if result.get("steps"):
        out.line("steps:", style="bold")
        for number, step in enumerate(result["steps"], 1):
            out.line(f"  {number}. {step}")
    if (result.get("max_deletes") or {}).get("exceeded"):
        out.warn("more deletes than max_deletes: the deploy would stop unless --force-deletes")


def _size(count: float) -> str:
    """``33.3 MB`` for people (decimal units, as file managers and Netlify show them)."""
    units = ("bytes", "kB", "MB", "GB", "TB")
    exponent = 0
    while count >= 1000 and exponent < len(units) - 1:
        count /= 1000
        exponent += 1
    return f"{int(count)} bytes" if exponent == 0 else f"{count:.1f} {units[exponent]}"


def _deploy(
    c: Any,
    out: Output,
    env: str | None,
    dir: str | None,
    build: bool,
    message: str | None,
    platform: str | None,
    flags: dict[str, bool],
) -> dict[str, Any]:
    deployer = deployer_for(c, out, env, platform)
    cache = not flags.pop("no_cache")
    if flags.pop("dry_run"):
        return deployer.dry_run(build_dir=dir, build=build, cache=cache)
    skip_checks = flags.pop("skip_checks")
    deployer.platform.flags.update(flags)
    return deployer.deploy(
        build_dir=dir, build=build, message=message, skip_checks=skip_checks, cache=cache
    ).result()


def _deploy_task(platform: str | None) -> Any:
    """``deploy`` (the configured platform) or ``deploy.<platform>``: all the same flow."""

    def deploy_to(
        c: Context,
        out: Output,
        env=None,
        dir=None,
        build=False,
        message=None,
        dry_run=False,
        force_deletes=False,
        wait=False,
        skip_checks=False,
        no_cache=False,
    ) -> dict[str, Any]:
        flags = {
            "dry_run": dry_run,
            "force_deletes": force_deletes,
            "wait": wait,
            "skip_checks": skip_checks,
            "no_cache": no_cache,
        }
        return _deploy(c, out, env, dir, build, message, platform, flags)

    deploy_to.__doc__ = (
        f"Deploy to the {platform} target, whatever the config names."
        if platform
        else "Deploy to the platform configured for the environment."
    )
    return command(human=show_deployment, help=HELP, name=platform or "configured")(deploy_to)


configured = _deploy_task(None)
ns = Collection("deploy")
ns.add_task(configured, default=True)
for _name in AVAILABLE:
    ns.add_task(_deploy_task(_name))
