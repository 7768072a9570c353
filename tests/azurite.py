"""One Azurite (the Azure Storage emulator, blob service) per test session, on 127.0.0.1.

Azurite is an npm package: it is installed into this repository's ``node_modules/`` at a
pinned version when it is missing (``.ci/run`` does it ahead of the tests with
``python tests/azurite.py install``). Tests reach it through a connection string with the
emulator's well-known account, like they would reach an Azure storage account.

Known gaps: no blob versioning, and a batch delete in ``$web`` answers 400 for the whole
batch (the store's per-blob fallback is tested against exactly that).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import local_server

__all__ = [
    "ACCOUNT",
    "ACCOUNT_KEY",
    "VERSION",
    "Azurite",
    "install",
    "installed_version",
    "reset",
    "start",
]

VERSION = "3.37.0"
ROOT = Path(__file__).resolve().parent.parent
BINARY = ROOT / "node_modules" / ".bin" / "azurite-blob"
#: Azurite's fixed development account (public, documented by Microsoft: not a secret).
ACCOUNT = "devstoreaccount1"
ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


@dataclass
class Azurite:
    """A running Azurite blob service and how to reach it."""

    server: local_server.LocalServer
    location: Path

    @property
    def endpoint(self) -> str:
        """The account's blob endpoint (Azurite puts the account in the path)."""
        return f"{self.server.url}/{ACCOUNT}"

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
            f"BlobEndpoint={self.endpoint};"
        )

    def stop(self) -> None:
        self.server.stop()
        shutil.rmtree(self.location, ignore_errors=True)


def installed_version() -> str | None:
    """The version of Azurite in ``node_modules/``, if any."""
    try:
        return str(json.loads((ROOT / "node_modules/azurite/package.json").read_text())["version"])
    except (OSError, ValueError, KeyError):
        return None


def install() -> Path:
    """``node_modules/.bin/azurite-blob``, installed with npm (pinned) unless it is there."""
    if BINARY.exists() and installed_version() == VERSION:
        return BINARY
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("Azurite needs Node.js and npm: apt-get install nodejs npm")
    subprocess.run(
        [
            npm,
            "install",
            "--prefix",
            str(ROOT),
            "--no-save",
            "--no-package-lock",
            "--no-audit",
            "--no-fund",
            f"azurite@{VERSION}",
        ],
        check=True,
        stdin=subprocess.DEVNULL,
    )
    if not BINARY.exists():
        raise RuntimeError(f"npm installed azurite@{VERSION} but {BINARY} is not there")
    return BINARY


def start() -> Azurite:
    """Start Azurite's blob service and wait until it answers; raises (never skips)."""
    binary = install()
    location = Path(tempfile.mkdtemp(prefix="azurite-"))
    try:
        server = local_server.start(
            "azurite",
            lambda port: [
                str(binary),
                "--blobHost",
                "127.0.0.1",
                "--blobPort",
                str(port),
                "--location",
                str(location),
                "--skipApiVersionCheck",
                "--disableTelemetry",
                "--silent",
            ],
        )
    except BaseException:
        shutil.rmtree(location, ignore_errors=True)
        raise
    return Azurite(server, location)


def reset(azurite: Azurite) -> None:
    """Delete every container (between tests)."""
    from azure.storage.blob import BlobServiceClient

    with BlobServiceClient.from_connection_string(azurite.connection_string) as service:
        for container in service.list_containers():
            service.delete_container(container.name)


if __name__ == "__main__":
    if sys.argv[1:] != ["install"]:
        sys.exit("usage: python tests/azurite.py install")
    print(install())
