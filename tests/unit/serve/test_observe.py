"""Request ids, the body cap, the JSON access log and the audit rows of mutations."""

from __future__ import annotations

import json
import logging

import pytest

from serve.audit import body_parameters, redact


def test_a_sane_incoming_request_id_is_echoed_and_a_bad_one_replaced(api):
    sent = api.get("/symbols", headers={"X-Request-ID": "client-42.a:b"})
    assert sent.headers["x-request-id"] == "client-42.a:b"
    for bad in ("", "x" * 65, "has space", "<script>"):
        made = api.get("/symbols", headers={"X-Request-ID": bad}).headers["x-request-id"]
        assert made != bad and len(made) == 32 and made.isalnum()
    assert api.client.get("/health").headers["x-request-id"], "open routes carry one too"


def test_one_json_log_line_per_request_with_route_status_duration_and_token(api, caplog):
    with caplog.at_level(logging.INFO, logger="scizor.api.access"):
        api.get("/symbols/VEA.ASX", scope="read", headers={"X-Request-ID": "req-1"})
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "scizor.api.access"]
    assert len(lines) == 1
    line = lines[0]
    assert line["route"] == "/symbols/{instrument}" and line["status"] == 404
    assert line["request_id"] == "req-1" and line["token"] == "read-user"
    assert line["method"] == "GET" and line["duration_ms"] >= 0


def test_a_body_over_one_mib_is_413_by_content_length_and_when_streamed(api):
    big = b'{"instrument": "' + b"A" * (1024 * 1024) + b'"}'
    response = api.post("/symbols", content=big, headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.json()["error"] == "PayloadTooLarge" and "MiB" in response.json()["detail"]

    def chunks():
        for _ in range(20):
            yield b"x" * 65536

    streamed = api.client.post("/symbols", content=chunks(), headers=api.headers())
    assert streamed.status_code == 413
    assert "send a smaller body" in streamed.json()["detail"]


def test_every_mutation_is_audited_with_token_route_params_status_and_request_id(api):
    api.post("/collect/historical/VEA.ASX", scope="research",
             json={"bar_size": "1d"}, headers={"X-Request-ID": "rid-7"})  # fmt: skip
    entry = api.context.catalog.audit.list(request_id="rid-7")[0]
    assert entry.actor == "research-user"
    assert entry.action == "POST /collect/historical/{instrument}"
    assert entry.detail == {"path": {"instrument": "VEA.ASX"}, "body": {"bar_size": "1d"}}
    assert entry.status == 404, "the failure is audited with the status answered"


def test_refused_mutations_are_audited_as_anonymous_or_with_the_token(api):
    api.client.post("/collect", json={"years": 2}, headers={"X-Request-ID": "anon-1"})
    entry = api.context.catalog.audit.list(request_id="anon-1")[0]
    assert (entry.actor, entry.status, entry.action) == ("anonymous", 401, "POST /collect")
    api.post("/collect", scope="read", json={"years": 2}, headers={"X-Request-ID": "r-2"})
    entry = api.context.catalog.audit.list(request_id="r-2")[0]
    assert (entry.actor, entry.status) == ("read-user", 403)


def test_reads_are_not_audited(api):
    api.get("/symbols", headers={"X-Request-ID": "read-1"})
    assert api.context.catalog.audit.list(request_id="read-1") == []


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"password": "p", "name": "n"}, {"password": "***", "name": "n"}),
        ({"nested": [{"api_key": "k", "x": 1}]}, {"nested": [{"api_key": "***", "x": 1}]}),
        (
            {"Authorization": "Bearer t", "token_name": "t"},
            {"Authorization": "***", "token_name": "***"},
        ),
    ],
)
def test_secrets_are_redacted_at_any_depth(value, expected):
    assert redact(value) == expected


def test_large_or_non_json_bodies_are_summarized_not_stored():
    big = json.dumps({"rows": ["x" * 100] * 200}).encode()
    assert body_parameters(big, "application/json") == {"bytes": len(big), "truncated": True,
                                                       "keys": ["rows"]}  # fmt: skip
    assert body_parameters(b"abc", "text/plain") == {"bytes": 3, "content_type": "text/plain"}
    assert body_parameters(b"{bad", "application/json") == {"bytes": 4, "invalid_json": True}


def test_behind_a_proxy_that_echoes_the_id_it_is_not_sent_twice(api):
    api.context.proxy_echoes_request_id = True
    same = api.get("/symbols", headers={"X-Request-ID": "from-proxy-1"})
    assert same.headers.get_list("x-request-id") == [], "the proxy adds it"
    insane = api.get("/symbols", headers={"X-Request-ID": "has space"})
    (made,) = insane.headers.get_list("x-request-id")
    assert made != "has space" and len(made) == 32
