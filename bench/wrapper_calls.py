"""Run in the Seldon venv: how many calls to the wrapper's metrics Manager process
(multiprocessing proxies behind SeldonMetrics) one Route and one SendFeedback make, per
class. Each call is a round trip to another process; a count, not a timing, so it reads the
same on a busy machine as on an idle one. bench/wrapper_speed.py prints it beside the
throughput; tests/interop/test_interop_cost.py asserts on it.

    <seldon venv>/bin/python bench/wrapper_calls.py '{"label": ["module.Class", params]}'

params is the --parameters JSON list. For each class it calls what the wrapper's REST and
gRPC handlers call (seldon_core.seldon_methods.route, then send_feedback for the child that
route chose) once to warm up, then counts a second pair. Prints {"label": {"route": N,
"feedback": N, "methods": [...the Route's calls]}} as JSON.
"""

import importlib
import json
import sys
from multiprocessing import managers

from seldon_core import seldon_methods
from seldon_core.metrics import SeldonMetrics
from seldon_core.microservice import parse_parameters
from seldon_core.utils import json_to_feedback


def count(model, metrics, calls: list) -> dict:
    request = {"data": {"ndarray": [[1.0, 2.0]]}}
    out = {}
    for _ in ("warm-up", "counted"):
        calls.clear()
        route = seldon_methods.route(model, request, metrics)["data"]["ndarray"][0][0]
        out["route"], out["methods"] = len(calls), list(calls)
        feedback = json_to_feedback({"request": request, "reward": 1.0,
                                     "response": {"meta": {"routing": {"0": route}}}})
        calls.clear()
        seldon_methods.send_feedback(model, feedback, "0", metrics)
        out["feedback"] = len(calls)
    return out


def main() -> None:
    classes = json.loads(sys.argv[1])
    calls = []
    original = managers.BaseProxy._callmethod

    def counting(self, name, args=(), kwds=None):
        calls.append(name)
        return original(self, name, args, {} if kwds is None else kwds)

    managers.BaseProxy._callmethod = counting
    metrics = SeldonMetrics()
    out = {}
    for label, (interface, params) in classes.items():
        module, _, name = interface.rpartition(".")
        model = getattr(importlib.import_module(module), name)(**parse_parameters(params))
        out[label] = count(model, metrics, calls)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
