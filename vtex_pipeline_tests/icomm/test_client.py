"""The icomm client against the simulator over real HTTP: auth schemes, errors, retries, verify."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import pytest

from vtex_pipeline.icomm.client import (
    IcommAuthError,
    IcommClient,
    IcommRequestFailed,
    auth_header,
    verify_icomm,
)
from vtex_pipeline_tests.icomm.conftest import API_KEY, PROFILE, IcommSim, make_client, make_settings


def contact(email: str, **fields: str) -> dict:
    return {"Email": email, "CustomFields": [{"Key": k, "Value": v} for k, v in fields.items()]}


@pytest.mark.parametrize("scheme", ["basic", "raw"])
def test_both_auth_schemes_save_a_batch(icomm: IcommSim, scheme: str) -> None:
    with make_client(icomm.url, auth_scheme=scheme) as client:
        results = client.save_multi_contact([contact("a@example.com", NAME="A"), contact("b@example.com")])
    assert [(r.email, r.ok, r.status_code) for r in results] == [
        ("a@example.com", True, 1),
        ("b@example.com", True, 1),
    ]
    assert icomm.contacts()["a@example.com"] == {"NAME": "A"}


def test_auth_header_shapes() -> None:
    assert auth_header("k3y", "raw") == "k3y"
    assert auth_header("k3y", "basic") == "Basic azN5Og=="  # base64("k3y:")


def test_wrong_key_is_401_and_never_echoed(icomm: IcommSim, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "WRONG-KEY-very-secret-123"
    with make_client(icomm.url, api_key=wrong) as client, pytest.raises(IcommAuthError) as info:
        client.save_multi_contact([contact("a@example.com")])
    assert info.value.status == 401
    assert wrong not in str(info.value) and wrong not in repr(client) and wrong not in caplog.text
    assert icomm.stats()["requests"] == 1  # an auth failure is not retried


def test_a_key_revoked_mid_export_is_401_at_once(icomm: IcommSim) -> None:
    """The simulator's /_sim/keys revokes the key at run time (the daemon's fault matrix uses it)."""
    import requests

    with make_client(icomm.url) as client:
        assert client.save_multi_contact([contact("a@example.com")])[0].ok
        requests.post(f"{icomm.url}/_sim/keys", json={"api_keys": []}, timeout=10).raise_for_status()
        with pytest.raises(IcommAuthError) as info:
            client.save_multi_contact([contact("b@example.com")])
        assert info.value.status == 401 and API_KEY not in str(info.value)
        requests.post(f"{icomm.url}/_sim/keys", json={"api_keys": [API_KEY]}, timeout=10).raise_for_status()
        assert client.save_multi_contact([contact("b@example.com")])[0].ok
    assert icomm.counts() == {"a@example.com": 1, "b@example.com": 1}


def test_per_contact_errors_are_mapped_by_position(icomm: IcommSim) -> None:
    batch = [contact("ok1@example.com"), contact("not-an-email"), contact("ok2@example.com"), contact("")]
    with make_client(icomm.url) as client:
        results = client.save_multi_contact(batch)
    assert [r.ok for r in results] == [True, False, True, False]
    assert results[1].email == "not-an-email" and results[1].status_code == 2
    assert "Invalid email" in results[1].message
    assert set(icomm.contacts()) == {"ok1@example.com", "ok2@example.com"}
    assert icomm.stats()["requests"] == 1  # record-level failures are not retried blindly


def test_429_with_retry_after_then_ok(icomm: IcommSim) -> None:
    icomm.set_faults("storm429=2,retry_after=0.3")
    t0 = time.monotonic()
    with make_client(icomm.url, max_attempts=2) as client:
        results = client.save_multi_contact([contact("a@example.com")])
        stats = client.stats.snapshot()
    assert results[0].ok
    assert time.monotonic() - t0 >= 0.55  # two Retry-After waits honoured
    assert stats["throttled"] == 2 and stats["retries"] == 2 and stats["requests"] == 3
    assert icomm.stats()["status_429"] == 2


def test_5xx_retried_then_fails_without_writing(icomm: IcommSim) -> None:
    icomm.set_faults("fail_batches=1,retry_after=0")
    with make_client(icomm.url, max_attempts=3) as client, pytest.raises(IcommRequestFailed) as info:
        client.save_multi_contact([contact("a@example.com")])
    assert info.value.attempts == 3 and info.value.status == 503
    assert icomm.contacts() == {}


def test_lost_response_is_retried_and_the_replay_is_harmless(icomm: IcommSim) -> None:
    icomm.set_faults("lose_response=1,hang=1.5")
    with make_client(icomm.url, timeout=0.5) as client:
        results = client.save_multi_contact([contact("a@example.com", X="1")])
        assert client.stats.snapshot()["timeouts"] == 1
    assert results[0].ok
    assert icomm.counts()["a@example.com"] == 2  # written twice, same state
    assert icomm.contacts() == {"a@example.com": {"X": "1"}}


def test_save_contact_list_full_and_partial_update(icomm: IcommSim) -> None:
    with make_client(icomm.url) as client:
        assert client.save_contact(contact("Ana@Example.com", A="1", B="2")).ok
        assert client.save_contact(contact("ana@example.com", B="3")).ok  # only B is sent
        assert not client.save_contact(contact("bad")).ok
        found = client.list_full("ana@example.com")
        assert client.list_full("nobody@example.com") == []
    assert len(found) == 1
    assert {c["Key"]: c["Value"] for c in found[0]["CustomFields"]} == {"A": "1", "B": "3"}


def test_unknown_profile_is_a_top_level_error(icomm: IcommSim) -> None:
    client = IcommClient(icomm.url, API_KEY, "no-such-profile", max_attempts=2, backoff_base=0.01)
    with client, pytest.raises(IcommRequestFailed) as info:
        client.save_multi_contact([contact("a@example.com")])
    assert "ProfileKey not found" in str(info.value)
    assert icomm.contacts() == {}


def test_verify(start_icomm: Callable[..., IcommSim]) -> None:
    sim = start_icomm()
    ok, msg = verify_icomm(make_settings(sim.url), API_KEY)
    assert ok, msg
    ok, msg = verify_icomm(make_settings(sim.url, profile_key="nope"), API_KEY)
    assert not ok and "profile" in msg
    ok, msg = verify_icomm(make_settings(sim.url), "bad-key-XYZ-0000")
    assert not ok and "refused" in msg and "bad-key-XYZ-0000" not in msg
    ok, msg = verify_icomm(make_settings(sim.url), None)
    assert not ok and "ICOMM_API_KEY" in msg
    assert sim.contacts() == {}  # verify never writes


def test_verify_suggests_the_other_scheme() -> None:
    """A server that only takes the raw key: verify says which scheme works."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from vtex_pipeline.simulators.server import ServerThread

    async def list_full(request: Request) -> JSONResponse:
        if request.headers.get("authorization") != API_KEY:
            return JSONResponse({}, 401)
        return JSONResponse({"ListContactsFullJsonResult": []})

    app = Starlette(routes=[Route("/Contacts/ListFull.Json/", list_full, methods=["POST"])])
    with ServerThread(app) as server:
        ok, msg = verify_icomm(make_settings(server.url), API_KEY)
    assert not ok and "ICOMM_AUTH_SCHEME=raw" in msg
    assert PROFILE  # the profile key is not a secret; the API key never appears
    assert API_KEY not in msg


def test_top_level_status_error_retries_the_whole_batch(icomm: IcommSim) -> None:
    icomm.set_faults("status_error=1")
    with make_client(icomm.url, max_attempts=2) as client, pytest.raises(IcommRequestFailed) as info:
        client.save_multi_contact([contact("a@example.com")])
    assert "StatusCode 0" in str(info.value) and icomm.stats()["requests"] == 2
    icomm.set_faults("status_error=0.5,seed=3")
    with make_client(icomm.url, max_attempts=8) as client:
        assert all(r.ok for r in client.save_multi_contact([contact(f"u{i}@example.com") for i in range(3)]))
    assert icomm.counts() == {f"u{i}@example.com": 1 for i in range(3)}  # refused calls wrote nothing
