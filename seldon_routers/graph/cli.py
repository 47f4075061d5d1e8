"""`seldon-router graph run DEPLOYMENT.yaml`: arguments and the run (docs/graph-runner.md)."""

from __future__ import annotations

import logging
import os
import signal
import sys

from ..errors import ConfigError

DESCRIPTION = (
    "Runs a SeldonDeployment's graph on this machine, with the semantics of Seldon Core 1.18.2's "
    "executor (route, children, aggregate, feedback by meta.routing, Seldon-Puid, errors), for "
    "development and tests: production runs in Seldon Core on Kubernetes. ROUTER units run this "
    "checkout's `seldon-router serve` (images are ignored), other units a stub model that answers "
    "its input tagged with its name, unless --unit says otherwise. REST only. "
    "Set SELDON_ENABLE_ROUTING_INJECTION (here, or in the predictor's svcOrchSpec.env) to add meta.routing to replies, as the executor does.")


# How long a first SIGTERM or SIGINT lets calls in flight finish (a unit call may hang: no
# rest-timeout by default); a second signal stops at once.
GRACEFUL_SHUTDOWN_S = 15


def add_parser(sub) -> None:
    g = sub.add_parser("graph", help="run a SeldonDeployment's graph locally (a development tool)",
                       description=DESCRIPTION)
    gsub = g.add_subparsers(dest="graph_command", required=True)
    r = gsub.add_parser("run", help="start the graph's units and serve its predictions and feedback",
                        description=DESCRIPTION)
    r.add_argument("deployment", help="a SeldonDeployment YAML file")
    r.add_argument("--predictor", default=None, metavar="NAME",
                   help="the predictor to run (default: the first; traffic between predictors is not split)")
    r.add_argument("--unit", action="append", default=[], metavar="NAME=SPEC",
                   help="how to run unit NAME: http://host:port (call it there, start nothing), a router "
                        "(ROUTER units: a built-in name or module.Class, instead of the container's ROUTER), or "
                        "module.Class (other units: a class served under the wrapper's model contract). "
                        "Repeat for several. Default: routers from their container's env, a stub model otherwise")
    r.add_argument("--host", default="127.0.0.1")
    r.add_argument("--port", type=int, default=8000, help="the graph's REST port (default 8000)")
    r.add_argument("--workdir", default=".", metavar="DIR",
                   help="the units' working directory, standing for the image's /app (default: here)")
    r.add_argument("--log-dir", default=None, metavar="DIR",
                   help="where each unit's output goes, NAME.log (default: a new temporary folder)")
    r.add_argument("--start-timeout", type=float, default=60.0, metavar="SECONDS",
                   help="how long a unit may take to be ready (default 60)")
    r.add_argument("--seed", type=int, default=None, help="seeds RANDOM_ABTEST's draws")
    r.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])


def _overrides(pairs: list) -> dict:
    found = {}
    for pair in pairs:
        name, sep, spec = pair.partition("=")
        if not sep or not name or not spec:
            raise ConfigError(f"--unit: expected NAME=SPEC (a URL, a router or module.Class), got {pair!r}")
        if name in found:
            raise ConfigError(f"--unit: unit {name!r} given twice")
        found[name] = spec
    return found


def _routing_injection(predictor) -> bool:
    """As the executor reads it: set to anything non-empty, in the runner's environment or in
    the predictor's svcOrchSpec.env (the executor container's, where Seldon sets it)."""
    name = "SELDON_ENABLE_ROUTING_INJECTION"
    return bool(os.environ.get(name) or predictor.executor_env.get(name))


def _server_class():
    import contextlib

    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn without its own signal handling (it re-raises the signal once done, which
        would end the runner before it stops its units): run() owns SIGTERM and SIGINT, through
        stop(). `on_stop` (a coroutine function) runs in the server's loop once it has stopped."""

        def __init__(self, config, on_stop=None):
            super().__init__(config)
            self.on_stop = on_stop

        @contextlib.contextmanager
        def capture_signals(self):
            yield

        def stop(self) -> None:
            """The first call: finish the calls in flight (at most timeout_graceful_shutdown);
            a second: stop now, as uvicorn's own second Ctrl-C does."""
            if self.should_exit:
                self.force_exit = True
            self.should_exit = True

        async def serve(self, sockets=None):
            try:
                await super().serve(sockets)
            finally:
                if self.on_stop is not None:
                    await self.on_stop()

    return Server


def run(args) -> int:
    try:  # the graph extra: PyYAML, httpx, and the server's uvicorn
        import random

        import uvicorn

        from . import deployment
        from .client import UnitClient
        from .executor import Executor
        from .front import Front
        from .launcher import Launcher
    except ImportError as exc:
        raise ConfigError(f"graph: needs the graph extra ({exc}): pip install 'seldon-routers[graph]'") from None
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per unit call
    server_class = _server_class()
    predictor = deployment.load(args.deployment, args.predictor)
    launcher = Launcher(predictor, _overrides(args.unit), args.workdir, args.log_dir, args.start_timeout,
                        reserved={args.port})

    def stop_starting(signum, frame):  # while units start: stop those started, then exit
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop_starting)
    try:
        urls = launcher.start()
        for name, url in urls.items():
            print(f"seldon-router graph: unit {name} at {url}", file=sys.stderr)
        client = UnitClient(urls, predictor.rest_timeout_ms)
        executor = Executor(predictor, client.call, random.Random(args.seed),
                            routing_injection=_routing_injection(predictor))
        config = uvicorn.Config(Front(executor, urls, launcher.pids()), host=args.host, port=args.port,
                                lifespan="off", access_log=False, log_level=args.log_level,
                                timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S)
        server = server_class(config, on_stop=client.aclose)

        def stop_serving(signum, frame):  # uvicorn finishes its calls (a second signal: at once), then the units stop
            server.stop()

        signal.signal(signal.SIGTERM, stop_serving)
        signal.signal(signal.SIGINT, stop_serving)
        print(f"seldon-router graph: {predictor.deployment}/{predictor.name} on http://{args.host}:{args.port} "
              f"(unit logs in {launcher.log_dir})", file=sys.stderr)
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        launcher.stop()
    return 0

