"""Seldon's own python client (seldon_core.seldon_client.SeldonClient, run in the Seldon
venv) against OUR server. Its microservice calls are: REST POST /route and /send-feedback
with the message as a form field `json=`; gRPC Generic/Route and Generic/SendFeedback."""

import pytest
from seldon_peers import route_value, seldon_side
from servers import running_router

pytestmark = pytest.mark.peers

UNIT = "myrouter"


@pytest.fixture(scope="module")
def router():
    with running_router("ab-test", "--param", "n_branches=3", "--param", "weights=0.5:0.3:0.2",
                        "--unit-id", UNIT) as rp:
        yield rp


@pytest.mark.parametrize("payload", ["tensor", "ndarray", "json", "str"])
@pytest.mark.parametrize("transport", ["rest", "grpc"])
def test_seldon_client_route_then_feedback(seldon_python, router, transport, payload):
    endpoint = f"127.0.0.1:{router.grpc_port if transport == 'grpc' else router.http_port}"
    out = seldon_side(seldon_python, "client", "--endpoint", endpoint, "--transport", transport,
                      "--payload", payload)
    # success is False on a non-200 reply or a gRPC error; response is None when the reply
    # does not parse (strictly: an unknown field fails) as Seldon's own SeldonMessage.
    route = out["route"]
    assert route["success"] and route["response"] is not None, route
    value = route_value(route["response"])
    assert 0 <= value < 3
    assert route["response"]["meta"]["routing"] == {UNIT: value}
    feedback = out["feedback"]
    assert feedback["success"] and feedback["response"] is not None, feedback
    assert feedback["response"].get("status", {}).get("status", "SUCCESS") == "SUCCESS", feedback
