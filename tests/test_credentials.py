"""The credentials resolver: environment variable, then the secrets store, then nothing."""

from __future__ import annotations

import pytest

from devops_tasks.config import ConfigStore
from devops_tasks.credentials import Credentials
from devops_tasks.errors import DevopsError, ErrorCode
from devops_tasks.redaction import redact
from devops_tasks.secrets.local import LocalSecretsStore

KEY = {"DEVOPS_MASTER_KEY": "ab" * 32}


def credentials(project, environment="production", environ=None):
    settings = ConfigStore(project, environ={}).settings(environment)
    return Credentials(project, settings, environ={**KEY, **(environ or {})})


def store(project):
    return LocalSecretsStore(project, {}, KEY)


def test_an_environment_variable_wins_over_the_store(project):
    store(project).set("NETLIFY_AUTH_TOKEN", "from-store-value")
    found = credentials(project, environ={"NETLIFY_AUTH_TOKEN": "from-env-value"})
    assert found.lookup("NETLIFY_AUTH_TOKEN") == "from-env-value"


def test_the_store_is_used_when_the_variable_is_unset(project):
    store(project).set("NETLIFY_AUTH_TOKEN", "from-store-value")
    assert credentials(project).lookup("NETLIFY_AUTH_TOKEN") == "from-store-value"


def test_the_environments_own_secret_wins_over_the_shared_one(project):
    store(project).set("TOKEN", "shared-token")
    store(project).set("TOKEN", "staging-token", "staging")
    assert credentials(project, "staging").lookup("TOKEN") == "staging-token"
    assert credentials(project, "production").lookup("TOKEN") == "shared-token"


def test_nothing_found_is_none_so_an_sdk_can_use_its_own_chain(project):
    assert credentials(project).lookup("AWS_ACCESS_KEY_ID") is None


def test_require_names_the_variable_and_the_secrets_command(project):
    with pytest.raises(DevopsError) as missing:
        credentials(project, "staging").require("VERCEL_TOKEN", "deploying to Vercel")
    assert missing.value.code is ErrorCode.CREDENTIALS_MISSING
    assert "devops secrets.set VERCEL_TOKEN" in missing.value.fix
    assert "export VERCEL_TOKEN" in missing.value.fix and "--env staging" in missing.value.fix


def test_a_found_credential_is_masked_in_all_output(project):
    value = credentials(project, environ={"API_TOKEN": "tok-from-env-77"}).require("API_TOKEN", "x")
    assert redact(f"calling with {value}") == "calling with ••••••••"
