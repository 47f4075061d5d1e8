"""The forwarder's small rules, in process: a decision's timeout and retries tags, and the
client headers passed on."""

from seldon_routers.gateway.forward import _int, _seconds, forwarded


def test_a_routes_timeout_tag_wins_and_zero_means_none():
    assert _seconds("30s", 600) == 30.0 and _seconds(2, 600) == 2.0
    assert _seconds("0s", 600) is None and _seconds(0, 600) is None  # Envoy: 0 disables the timeout
    assert _seconds(None, 600) == 600 and _seconds("soon", 600) == 600 and _seconds(-1, 600) == 600


def test_a_routes_retries_tag_must_be_a_count():
    assert _int(3, 2) == 3 and _int(0, 2) == 0
    assert _int(True, 2) == 2 and _int(-1, 2) == 2 and _int("3", 2) == 2


def test_hop_by_hop_headers_and_those_connection_names_are_not_passed_on():
    scope = [(b"host", b"gw"), (b"connection", b"keep-alive, x-trace"), (b"x-trace", b"1"), (b"te", b"trailers"),
             (b"authorization", b"Bearer k"), (b"content-type", b"application/json"), (b"accept-encoding", b"gzip")]
    assert forwarded(scope) == [("authorization", "Bearer k"), ("content-type", "application/json")]
