"""Run in the Seldon venv by wrapper_speed.py: how many calls to the wrapper's metrics
Manager process (multiprocessing proxies behind SeldonMetrics) one Route makes, per class.

    <seldon venv>/bin/python bench/wrapper_calls.py '{"label": ["module.Class", params]}'

params is the --parameters JSON list. It calls seldon_core.seldon_methods.route (what the
wrapper's REST and gRPC handlers call) once to warm up, then counts the proxy calls of a
second Route. Prints {"label": {"calls": N, "methods": [...]}} as JSON. A count, not a
timing: each call is a round trip to another process, whatever the machine's load.
"""

import importlib
import json
import sys
from multiprocessing import managers

from seldon_core import seldon_methods
from seldon_core.metrics import SeldonMetrics
from seldon_core.microservice import parse_parameters


def main() -> None:
    classes = json.loads(sys.argv[1])
    calls = []
    original = managers.BaseProxy._callmethod

    def counting(self, name, args=(), kwds=None):
        calls.append(name)
        return original(self, name, args, {} if kwds is None else kwds)

    managers.BaseProxy._callmethod = counting
    metrics = SeldonMetrics()
    request = {"data": {"ndarray": [[1.0, 2.0]]}}
    out = {}
    for label, (interface, params) in classes.items():
        module, _, name = interface.rpartition(".")
        model = getattr(importlib.import_module(module), name)(**parse_parameters(params))
        seldon_methods.route(model, request, metrics)
        calls.clear()
        seldon_methods.route(model, request, metrics)
        out[label] = {"calls": len(calls), "methods": list(calls)}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
