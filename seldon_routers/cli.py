"""`seldon-router`: serve a router, list the built-ins, simulate bandit policies.

Configuration is read once here, flags over environment over Seldon's defaults; a bad
value stops start-up with a message naming it (exit status 2).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from . import params, registry
from .errors import ConfigError, RouterError
from .routers._params import integer, number, positive_int


def _env(name: str, default, convert, field: str, expected: str):
    """$name converted (unset or empty: default); a value that does not convert stops start-up
    naming `field`."""
    value = os.environ.get(name, "")
    if not value:
        return default
    try:
        return convert(value)
    except ValueError:
        raise ConfigError(f"{field}: {expected}, got {value!r}") from None


def _env_int(name: str, default: int) -> int:
    return _env(name, default, int, name, "expected an integer port")


def import_from_cwd() -> None:
    """As seldon-core-microservice does: a module in the working directory imports (the
    console script, unlike `python -m`, does not put it on sys.path). For serve's router and
    the graph runner's stub model (a user's class)."""
    if os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seldon-router", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="serve a router over REST, gRPC and Prometheus metrics")
    s.add_argument("router", nargs="?", default=None,
                   help="a built-in name (see `seldon-router list`) or an import path pkg.module.Class / "
                        "pkg.module:Class (default: $MODEL_NAME, as Seldon's images set it, else $ROUTER)")
    # Seldon's microservice flags, so that its images' commands run unchanged: a router server
    # serves ROUTER units only; persistence (removed from Seldon's wrapper) is accepted and ignored.
    s.add_argument("--service-type", default=None, metavar="TYPE",
                   help="Seldon's unit type; only ROUTER is served (default: $SERVICE_TYPE or ROUTER)")
    s.add_argument("--persistence", default=None, help=argparse.SUPPRESS)
    s.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help="a router parameter; repeat for several (typed by the constructor's annotations), added on top "
                        "of --parameters (default: none)")
    s.add_argument("--parameters", default=None, metavar="JSON",
                   help="Seldon's parameter list [{\"name\",\"value\",\"type\"}] "
                        "(default: $PREDICTIVE_UNIT_PARAMETERS)")
    s.add_argument("--unit-id", default=None, metavar="ID", help="this unit's name in the graph (default: $PREDICTIVE_UNIT_ID or 0)")
    s.add_argument("--host", default="0.0.0.0", help="the address to listen on (default 0.0.0.0: all)")
    s.add_argument("--http-port", type=int, default=None, metavar="PORT",
                   help="the REST port (default: $PREDICTIVE_UNIT_HTTP_SERVICE_PORT or 9000)")
    s.add_argument("--grpc-port", type=int, default=None, metavar="PORT",
                   help="the gRPC port (default: $PREDICTIVE_UNIT_GRPC_SERVICE_PORT or 5000)")
    s.add_argument("--metrics-port", type=int, default=None, metavar="PORT",
                   help="the Prometheus port (default: $PREDICTIVE_UNIT_METRICS_SERVICE_PORT or 6000)")
    s.add_argument("--max-body-size", type=int, default=None, metavar="BYTES",
                   help="largest request accepted, REST and gRPC (default 16 MiB)")
    s.add_argument("--max-in-flight", type=int, default=0, metavar="N",
                   help="answer 429 / RESOURCE_EXHAUSTED beyond N concurrent calls (default 0: no limit)")
    s.add_argument("--path-header", default=None, metavar="NAME",
                   help="the header (gRPC: metadata key) a gateway forwards the client's original path in; "
                        "when a call carries it, routers see that path (and its query string) instead of "
                        "/route. Empty: off (default: $SELDON_ROUTER_PATH_HEADER or x-envoy-original-path)")
    s.add_argument("--graceful-timeout", type=float, default=25.0, metavar="SECONDS",
                   help="how long SIGTERM waits for in-flight calls (default 25)")
    s.add_argument("--read-timeout", type=float, default=30.0, metavar="SECONDS",
                   help="a client's time to send a whole request: slow headers close the connection, a slow "
                        "body is a 408; gRPC: the time to finish the HTTP/2 handshake (default 30)")
    s.add_argument("--log-level", default=os.environ.get("SELDON_LOG_LEVEL", "info").lower(),
                   choices=["debug", "info", "warning", "error"],
                   help="default: $SELDON_LOG_LEVEL or info")
    s.add_argument("--workers", type=int, default=None, metavar="N",
                   help="worker processes sharing the ports and one state; N > 1 needs --state redis://... "
                        "(default: $SELDON_ROUTER_WORKERS or 1)")
    # Set by the supervisor on the workers it starts (server/workers.py), not by users.
    s.add_argument("--worker-index", type=int, default=None, help=argparse.SUPPRESS)
    s.add_argument("--ready-fd", type=int, default=None, help=argparse.SUPPRESS)
    a = s.add_argument_group("admin (docs/security.md)")
    a.add_argument("--admin-token-file", default=None, metavar="FILE",
                   help="turns on POST /admin/... actions, with this bearer token (re-read when the file changes; "
                        "or set $SELDON_ROUTER_ADMIN_TOKEN); off by default")
    a.add_argument("--restrict-state", action="store_true", help="GET /state needs the admin token too (default: open, as Seldon serves its endpoints)")
    st = s.add_argument_group("state (docs/state.md)")
    st.add_argument("--state", default=None, metavar="STORE",
                    help="memory, file:PATH or redis://host:port/db (default: $SELDON_ROUTER_STATE or memory)")
    st.add_argument("--snapshot-interval", type=float, default=None, metavar="SECONDS",
                    help="file: seconds between snapshots, also written at shutdown "
                         "(default: $SELDON_ROUTER_SNAPSHOT_INTERVAL or 10)")
    st.add_argument("--state-discard-bad", action="store_true",
                    help="file: keep a snapshot that cannot be restored aside (PATH.bad-TIME) and start fresh, "
                         "instead of refusing to start (default: off)")
    st.add_argument("--sync-interval", type=float, default=0.1, metavar="SECONDS",
                    help="redis: seconds between refreshes of the local copy routes are made from (default 0.1)")
    st.add_argument("--state-namespace", default=None, metavar="NS",
                    help="redis: key namespace (default: $SELDON_DEPLOYMENT_ID:$PREDICTOR_ID:unit id)")
    st.add_argument("--state-buffer", type=int, default=100_000, metavar="N",
                    help="redis: feedbacks held while Redis is unreachable; beyond, feedback is a 503 (default 100000)")
    st.add_argument("--state-required", action="store_true",
                    help="/ready answers 503 while the state store is unreachable (default: off, /ready stays 200)")
    st.add_argument("--state-fail-fast", action="store_true",
                    help="refuse to start when the state store is unreachable (default: start from local state)")
    sub.add_parser("list", help="list the built-in routers and their parameters")
    g = sub.add_parser("gateway", help="an OpenAI-compatible gateway: a router in front of model-server pods")
    g.add_argument("--config", required=True, metavar="FILE", help="gateway.yaml: pods, router, policies (docs/gateway.md)")
    g.add_argument("--host", default=None, help="listen address (default: the config's host, else 127.0.0.1)")
    g.add_argument("--port", type=int, default=None, help="listen port (default: the config's port, else 8888)")
    g.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    g.add_argument("--graceful-timeout", type=float, default=25.0, metavar="SECONDS",
                   help="on SIGTERM, how long answers in flight may take to finish (default 25)")
    g.add_argument("--read-timeout", type=float, default=30.0, metavar="SECONDS",
                   help="a client's time to send a whole request: slow headers close the connection, "
                        "a slow body is a 408 (default 30)")
    _simulate_parser(sub)
    from .graph import cli as graph_cli  # argparse only; the runner's stack loads when it runs

    graph_cli.add_parser(sub)
    return parser


def _simulate_parser(sub) -> None:
    m = sub.add_parser(
        "simulate", help="run routers on a simulated bandit and print their regret",
        description="Runs routers (policies) on a simulated bandit environment, every policy on the "
                    "same reward draws, and prints the mean cumulative pseudo-regret at T = 10, 100, "
                    "..., horizon, with the Lai-Robbins bound for stationary environments.")
    which = m.add_mutually_exclusive_group()
    which.add_argument("--policy", metavar="ROUTER", help="one policy: a built-in name or an import path")
    which.add_argument("--compare", metavar="A,B,...",
                       help="policies to compare, comma-separated; LABEL=ROUTER names one "
                            "(to compare a router under different parameters)")
    m.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help="a parameter for every policy whose constructor takes it; repeat for several")
    m.add_argument("--policy-param", action="append", default=[], metavar="LABEL:NAME=VALUE",
                   help="a parameter for one policy (after --param)")
    e = m.add_argument_group("environment")
    e.add_argument("--env", default="bernoulli", choices=["bernoulli", "gaussian", "drift", "contextual"])
    e.add_argument("--means", metavar="M1,M2,...", help="the arms' expected rewards")
    e.add_argument("--arms", type=int, metavar="K",
                   help="number of arms (with --best/--gap instead of --means; contextual: default 10)")
    e.add_argument("--best", type=float, help="shorthand: arm 0's mean (default 0.5)")
    e.add_argument("--gap", type=float, help="shorthand: the other arms' mean is best - gap (default 0.1)")
    e.add_argument("--shuffle-arms", action="store_true",
                   help="bernoulli, gaussian: the arms in a random order per repetition (so breaking ties "
                        "towards arm 0 gains nothing when arm 0 is the best)")
    e.add_argument("--sigma", type=float, default=1.0, help="gaussian: reward noise (default 1)")
    e.add_argument("--drift-at", type=int, metavar="STEP", help="drift: the step the means change at "
                                                                "(default horizon / 2)")
    e.add_argument("--drifted-means", metavar="M1,M2,...", help="drift: the means from --drift-at on")
    e.add_argument("--dim", type=int, default=5, help="contextual: number of features (default 5)")
    r = m.add_argument_group("run")
    r.add_argument("--horizon", type=int, default=10_000, metavar="T", help="steps per run (default 10000)")
    r.add_argument("--repetitions", type=int, default=10, metavar="R", help="runs per policy (default 10)")
    r.add_argument("--seed", type=int, default=0, help="seeds the reward draws and the policies (default 0)")
    r.add_argument("--batch", type=int, default=1, metavar="B",
                   help="delayed feedback: the rewards of B steps are sent after their B routes (default 1)")
    r.add_argument("--jobs", type=int, default=1, metavar="N", help="worker processes (default 1)")
    o = m.add_argument_group("output")
    o.add_argument("--out", metavar="DIR", help="write DIR/regret.csv and DIR/regret.png")
    o.add_argument("--no-plot", action="store_true", help="with --out: no PNG")
    o.add_argument("--quiet", action="store_true", help="no progress bar (there is none when stderr is not a terminal)")


def _router_name(args) -> str:
    name = args.router or os.environ.get("MODEL_NAME", "") or os.environ.get("ROUTER", "")
    if not name:
        raise ConfigError("serve: name the router (a built-in or pkg.module.Class), or set $MODEL_NAME")
    return name


def _service_type(args) -> None:
    value = args.service_type if args.service_type is not None else os.environ.get("SERVICE_TYPE", "")
    if value and value.upper() != "ROUTER":
        source = "--service-type" if args.service_type is not None else "$SERVICE_TYPE"
        raise ConfigError(f"{source}: this server serves ROUTER units, got {value!r} "
                          "(serve models with Seldon's own seldon-core-microservice)")


def _snapshot_interval(args) -> float:
    if args.snapshot_interval is not None:
        return number(args.snapshot_interval, "--snapshot-interval", 0, lo_open=True)
    field = "--snapshot-interval ($SELDON_ROUTER_SNAPSHOT_INTERVAL)"
    seconds = _env("SELDON_ROUTER_SNAPSHOT_INTERVAL", 10.0, float, field, "must be a number > 0")
    return number(seconds, field, 0, lo_open=True)


def _router_params(args) -> dict:
    raw = args.parameters if args.parameters is not None else os.environ.get("PREDICTIVE_UNIT_PARAMETERS", "")
    merged = params.from_seldon_json(raw) if raw else {}
    merged.update(params.from_pairs(args.param))  # flags win over the environment
    return merged


def _workers(args) -> int:
    if args.worker_index is not None:  # a worker itself
        return 1
    if args.workers is not None:
        workers, source = args.workers, "--workers"
    else:
        source = "--workers ($SELDON_ROUTER_WORKERS)"
        workers = _env("SELDON_ROUTER_WORKERS", 1, int, source, "expected an integer")
    return positive_int(workers, source)


# Why a store that is not shared cannot serve several workers.
_UNSHARED = {
    "memory": "with --state memory each worker would learn its own separate state",
    "file": "with --state file:PATH the workers would overwrite each other's snapshots",
}


def serve(args) -> int:
    args.router = _router_name(args)
    _service_type(args)
    try:  # the server stack loads only when serving
        from .server.app import Settings, run
        from .server.dataplane import DataPlane
    except ImportError as exc:
        raise ConfigError(f"serving needs the server extra ({exc}): pip install 'seldon-routers[server]'") from None

    workers = _workers(args)
    admin_token = _admin_token(args, workers)
    if workers > 1:  # checked first: the supervisor builds no router, its workers do
        store = _store(args)
        if not store.shared:
            why = _UNSHARED.get(store.kind, f"--state {store.kind} keeps a state per process")
            raise ConfigError(f"--workers {workers}: {why}; use --state redis://host:port/db to share one "
                              "state across workers (or --workers 1)")
    settings = Settings(
        host=args.host,
        http_port=args.http_port if args.http_port is not None else _env_int("PREDICTIVE_UNIT_HTTP_SERVICE_PORT", 9000),
        grpc_port=args.grpc_port if args.grpc_port is not None else _env_int("PREDICTIVE_UNIT_GRPC_SERVICE_PORT", 5000),
        metrics_port=(args.metrics_port if args.metrics_port is not None
                      else _env_int("PREDICTIVE_UNIT_METRICS_SERVICE_PORT", 6000)),
        metrics_path=os.environ.get("PREDICTIVE_UNIT_METRICS_ENDPOINT", "/metrics"),
        graceful_timeout=args.graceful_timeout,
        log_level=args.log_level,
        read_timeout=number(args.read_timeout, "--read-timeout", 0, lo_open=True),
    )
    if args.max_body_size is not None:
        settings.max_body_size = positive_int(args.max_body_size, "--max-body-size")
    integer(args.max_in_flight, "--max-in-flight")
    settings.path_header = _path_header(args)
    if workers > 1:
        from .server.workers import supervise

        return supervise(args.argv, settings, workers)
    import_from_cwd()
    cls = registry.resolve(args.router)
    router = params.build(cls, _router_params(args))
    unit_id = args.unit_id or os.environ.get("PREDICTIVE_UNIT_ID", "0")
    store = _store(args)
    # A Router's own `name` wins (as under create_app); else the built-in name or import path.
    name = (router.name if registry.is_router(cls) else "") or registry.builtin_name(cls)
    link = None
    if args.worker_index is not None:  # started by a supervisor (server/workers.py)
        from .server.workers import WorkerLink

        settings.reuse_port, settings.serve_metrics = True, False
        link = WorkerLink(args.worker_index, args.ready_fd)
    dp = DataPlane(router, unit_id, name, args.max_in_flight, store=store)
    if admin_token is not None:
        from .server.admin import Admin

        dp.admin = Admin(admin_token, lambda: params.build(cls, _router_params(args)), args.restrict_state)
    run(dp, settings, link)
    return 0


def _admin_token(args, workers: int):
    """The admin token (None: admin actions off), checked before anything starts."""
    from .server.admin import TOKEN_ENV, token_from

    token = token_from(args.admin_token_file)
    if token is None and args.restrict_state:
        raise ConfigError(f"--restrict-state: needs the admin token (--admin-token-file or ${TOKEN_ENV})")
    if token is not None and workers > 1:
        raise ConfigError(f"--admin-token-file/${TOKEN_ENV}: admin actions change one process's router, and with "
                          f"--workers {workers} a call reaches one worker; run one worker per replica to use them")
    return token


def _path_header(args) -> str:
    from .server import forwarded

    if args.path_header is not None:
        return forwarded.header_name(args.path_header)
    value = os.environ.get(forwarded.ENV)
    if value is None:  # unset: the default; set but empty: off
        return forwarded.DEFAULT_PATH_HEADER
    return forwarded.header_name(value, f"--path-header (${forwarded.ENV})")


def _store(args):
    from .state import StoreOptions, open_store

    options = StoreOptions(snapshot_interval=_snapshot_interval(args), discard_bad=args.state_discard_bad,
                           sync_interval=args.sync_interval, namespace=args.state_namespace or "",
                           buffer=args.state_buffer, required=args.state_required, fail_fast=args.state_fail_fast)
    return open_store(args.state or os.environ.get("SELDON_ROUTER_STATE", "memory"), options)


def list_builtins() -> None:
    for name in registry.BUILTINS:
        cls = registry.resolve(name)
        print(f"{name}  (seldon_routers.{cls.__qualname__}): {params.summary(cls.__doc__)}")
        for p in params.describe(cls):
            default = "required" if p["required"] else f"default {p['default']!r}"
            print(f"    {p['name']}: {p['type'] or 'any'} ({default})")


def gateway(args) -> int:
    try:
        from .gateway import app as gateway_app
        from .gateway import config as gateway_config
    except ImportError as exc:
        raise ConfigError(f"the gateway needs the gateway extra ({exc}): pip install 'seldon-routers[gateway]'") from None
    import_from_cwd()
    cfg = gateway_config.load(args.config)
    from .server.app import Settings

    settings = Settings(host=args.host if args.host is not None else cfg.host,
                        http_port=args.port if args.port is not None else cfg.port,
                        graceful_timeout=args.graceful_timeout, log_level=args.log_level,
                        read_timeout=number(args.read_timeout, "--read-timeout", 0, lo_open=True))
    gateway_app.run(cfg, settings)
    return 0


def simulate(args) -> int:
    try:  # numpy only; matplotlib and tqdm (the sim extra) load when used
        from .simulate import cli as simulate_cli
    except ImportError as exc:
        raise ConfigError(f"simulate: cannot load the simulator ({exc})") from None
    return simulate_cli.run(args)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    args.argv = argv  # what a supervisor runs again for each worker
    logging.basicConfig(level=getattr(args, "log_level", "info").upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if getattr(args, "worker_index", None) is not None:
        from .server.workers import log_as_worker

        log_as_worker(args.worker_index)
    try:
        if args.command == "list":
            list_builtins()
        elif args.command == "simulate":
            return simulate(args)
        elif args.command == "gateway":
            return gateway(args)
        elif args.command == "graph":
            from .graph import cli as graph_cli

            return graph_cli.run(args)
        else:
            return serve(args)
    except ConfigError as exc:
        print(f"seldon-router: error: {exc.message}", file=sys.stderr)
        return 2
    except RouterError as exc:  # a policy failed during a simulation
        print(f"seldon-router: error: {exc.message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
