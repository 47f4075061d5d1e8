"""Runs INSIDE the seldon-core 1.18.2 venv: what one Route and one SendFeedback cost a
router class under Seldon's wrapper, counted as calls to the wrapper's metrics Manager (a
separate process behind SeldonMetrics: each call is a round trip to it). A count, not a
timing, so it is the same on a busy machine as on an idle one.

    python seldon_cost.py '{"label": ["module.Class", parameters]}'

The label "plain" is a plain Seldon-style class defined here (no seldon_routers base),
the cost a user switching to a built-in starts from. Prints {label: {"route": N,
"feedback": N}} as JSON.
"""

import importlib
import json
import random
import sys
from multiprocessing import managers

from seldon_core import seldon_methods
from seldon_core.metrics import SeldonMetrics
from seldon_core.microservice import parse_parameters
from seldon_core.utils import json_to_feedback


class Plain:
    """Weighted random children, and feedback taken: what a Seldon user writes."""

    def __init__(self, n_branches=3):
        self.n = int(n_branches)

    def route(self, features, feature_names):
        return random.randrange(self.n)

    def send_feedback(self, features, feature_names, reward, truth, routing=None):
        return None


def cost(model, metrics, calls) -> dict:
    request = {"data": {"ndarray": [[1.0, 2.0]]}}
    out = {}
    for step in ("warm", "count"):
        calls.clear()
        reply = seldon_methods.route(model, request, metrics)
        route = reply["data"]["ndarray"][0][0]
        out["route"] = len(calls)
        feedback = json_to_feedback({"request": request, "reward": 1.0,
                                     "response": {"meta": {"routing": {"0": route}}}})
        calls.clear()
        seldon_methods.send_feedback(model, feedback, "0", metrics)
        out["feedback"] = len(calls)
    return out


def main() -> None:
    calls = []
    original = managers.BaseProxy._callmethod

    def counting(self, name, args=(), kwds=None):
        calls.append(name)
        return original(self, name, args, {} if kwds is None else kwds)

    managers.BaseProxy._callmethod = counting
    metrics = SeldonMetrics()
    out = {}
    for label, (interface, params) in json.loads(sys.argv[1]).items():
        if interface == "plain":
            cls = Plain
        else:
            module, _, name = interface.rpartition(".")
            cls = getattr(importlib.import_module(module), name)
        out[label] = cost(cls(**parse_parameters(params)), metrics, calls)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
