"""The retry policy every provider shares: what is retried, and how long it waits."""

from __future__ import annotations

import email.utils
import sys
import threading
import time

import pytest
from urllib3.exceptions import ProtocolError
from urllib3.response import HTTPResponse

from devops_tasks.http import (
    RETRY_STATUSES,
    Origin,
    Unreachable,
    default_policy,
    session,
    watching,
)


def response(status: int, **headers: str) -> HTTPResponse:
    return HTTPResponse(status=status, headers={k.replace("_", "-"): v for k, v in headers.items()})


def test_retry_after_in_seconds_is_honoured():
    assert default_policy().get_retry_after(response(429, Retry_After="7")) == 7


def test_retry_after_as_an_http_date_is_honoured():
    when = email.utils.formatdate(time.time() + 20, usegmt=True)
    assert 18 <= default_policy().get_retry_after(response(429, Retry_After=when)) <= 20


def test_x_ratelimit_reset_in_epoch_seconds_is_honoured():
    reset = str(int(time.time()) + 12)
    assert 10 <= default_policy().get_retry_after(response(429, X_RateLimit_Reset=reset)) <= 12


def test_the_longer_of_both_headers_wins():
    reset = str(int(time.time()) + 30)
    wait = default_policy().get_retry_after(response(429, Retry_After="2", X_RateLimit_Reset=reset))
    assert wait >= 28


def test_a_429_without_headers_waits_at_least_the_floor():
    assert default_policy(rate_limit_floor=1.5).get_retry_after(response(429)) == 1.5


def test_a_reset_in_the_past_waits_the_floor_not_zero():
    past = str(int(time.time()) - 100)
    assert default_policy().get_retry_after(response(429, X_RateLimit_Reset=past)) == 1.0


def test_a_huge_wait_is_capped():
    assert (
        default_policy(rate_limit_cap=60).get_retry_after(response(429, Retry_After="86400")) == 60
    )


def test_garbage_headers_fall_back_to_the_floor():
    policy = default_policy()
    assert policy.get_retry_after(response(429, Retry_After="soon", X_RateLimit_Reset="x")) == 1.0


def test_a_503_without_retry_after_uses_backoff_not_a_fixed_wait():
    assert default_policy().get_retry_after(response(503)) is None


@pytest.mark.parametrize("status", sorted(RETRY_STATUSES))
def test_rate_limits_and_server_errors_are_retried_for_any_method(status):
    for method in ("GET", "PUT", "POST", "DELETE"):
        assert default_policy().is_retry(method, status)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422])
def test_client_errors_are_never_retried(status):
    assert not default_policy().is_retry("PUT", status, has_retry_after=True)


def test_the_policy_keeps_its_bounds_when_urllib3_copies_it():
    policy = default_policy(rate_limit_floor=0.2, rate_limit_cap=9).increment("GET", "/x")
    assert (policy.rate_limit_floor, policy.rate_limit_cap) == (0.2, 9)


def test_backoff_has_jitter():
    policy = default_policy()
    for _ in range(3):
        policy = policy.increment("GET", "/x", error=ProtocolError("reset", ConnectionResetError()))
    assert len({policy.get_backoff_time() for _ in range(20)}) > 1


def test_the_session_times_out_every_request_by_default(monkeypatch):
    import requests

    seen = {}

    def fake_send(self, request, **kwargs):
        seen.update(kwargs)
        raise requests.ConnectionError("stop here")

    monkeypatch.setattr(requests.adapters.HTTPAdapter, "send", fake_send)
    with pytest.raises(requests.ConnectionError):
        session().get("http://127.0.0.1:9/")
    assert seen["timeout"] == (10.0, 120.0)


def test_the_session_identifies_itself():
    assert session().headers["User-Agent"].startswith("devops-tasks/")


def test_a_session_for_one_host_reads_proxy_settings_once(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    monkeypatch.setenv("NO_PROXY", "api.internal")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca.pem")
    proxied = session(base_url="https://api.example.com/v1")
    assert proxied.trust_env is False and proxied.verify == "/etc/ssl/certs/ca.pem"
    assert proxied.proxies["https"] == "http://proxy.invalid:3128"
    assert session(base_url="https://api.internal/v1").proxies == {}


# -- an origin: one host's pool, the policy and the headers, without requests ------------


@pytest.fixture
def fake(netlify_server):
    netlify_server.reset()
    return netlify_server


def origin_for(fake, base_url=None, **policy):
    return Origin(
        base_url or fake.api_url,
        headers={"Authorization": f"Bearer {fake.token}"},
        policy=default_policy(rate_limit_floor=0.01, backoff_factor=0.01, **policy),
    )


def test_an_origin_sends_its_headers_and_the_token(fake):
    answer = origin_for(fake).send("GET", "/api/v1/user")
    assert answer.status == 200 and answer.json()["email"]
    sent = fake.requests[-1].headers
    assert sent["authorization"] == f"Bearer {fake.token}"
    assert sent["user-agent"].startswith("devops-tasks/")


def test_an_origin_leaves_out_what_http_1_1_says_anyway(fake):
    origin_for(fake).send("GET", "/api/v1/user")
    assert {"connection", "accept"}.isdisjoint(fake.requests[-1].headers)


def test_an_origin_retries_by_the_session_policy(fake):
    fake.inject("GET", r"/user$", status=503, times=2)
    assert origin_for(fake).send("GET", "/api/v1/user").status == 200
    assert len(fake.requests) == 3


def test_an_origin_that_gets_no_answer_says_why():
    with pytest.raises(Unreachable) as raised:
        Origin("http://127.0.0.1:9/api", policy=default_policy(connect=0)).send("GET", "/api/x")
    assert raised.value.reason == "NewConnectionError"


def test_an_origin_goes_through_the_proxy_the_environment_names(fake, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", fake.base)  # the fake answers whatever URL it is asked
    answer = origin_for(fake, "http://127.0.0.1:9/api/v1").send("GET", "/api/v1/user")
    assert answer.status == 200


def test_an_origin_skips_the_proxy_for_a_host_in_no_proxy(fake, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", fake.base)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    with pytest.raises(Unreachable):
        origin_for(fake, "http://127.0.0.1:9/api/v1", connect=0).send("GET", "/api/v1/user")


def test_a_watching_thread_hears_of_each_retry_and_the_pause_asked(fake):
    fake.inject("GET", r"/user$", status=429, times=2, headers={"Retry-After": "0"})
    heard: list[float | None] = []
    with watching(heard.append):
        origin_for(fake).send("GET", "/api/v1/user")
    assert heard == [0.01, 0.01]  # the server asked for no pause: the policy's floor


def test_a_dropped_connection_is_heard_as_a_retry_without_a_pause(fake):
    fake.inject("GET", r"/user$", drop=True)
    heard: list[float | None] = []
    with watching(heard.append):
        origin_for(fake).send("GET", "/api/v1/user")
    assert heard == [None]


def test_a_thread_that_is_not_watching_hears_nothing(fake):
    fake.inject("GET", r"/user$", status=503)
    heard: list[float | None] = []
    with watching(heard.append):
        pass
    origin_for(fake).send("GET", "/api/v1/user")
    assert heard == []


#: What each thread that asked (see ``writes_of``) wrote through http.client, write by write.
_writes = threading.local()


def _record_write(event: str, args: tuple) -> None:
    if event == "http.client.send" and getattr(_writes, "seen", None) is not None:
        _writes.seen.append(bytes(args[1]))


sys.addaudithook(_record_write)  # an audit hook stays for good: it records only when asked


def writes_of(send):
    """Each write ``send()`` made on its connection (http.client's audit event)."""
    _writes.seen = []
    try:
        send()
        return _writes.seen
    finally:
        _writes.seen = None


def test_an_upload_leaves_with_its_request_head_in_one_write(fake):
    body = b"<p>page</p>\n" * 500
    headers = {"Content-Type": "application/octet-stream"}
    origin = origin_for(fake)
    writes = writes_of(lambda: origin.send("PUT", "/api/v1/deploys/0/files/a.html", body, headers))
    assert len(writes) == 1 and writes[0].startswith(b"PUT ") and writes[0].endswith(body)
    assert fake.requests[-1].body == body
