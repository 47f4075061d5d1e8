"""Run by tests/test_params.py in a process of its own, under a memory limit: every built-in
router built with hostile values of each of its parameters (as `--param name=value` gives
them: text), one at a time beside a valid n_branches. Prints a JSON list of what failed
otherwise than with a ConfigError (or took more memory than the limit: MemoryError)."""

import json
import resource
import sys
import warnings

LIMIT = 2 * 2 ** 30  # bytes of address space: a parameter that sizes arrays at will fails here, not in the OOM killer
VALUES = ["", "-1", "0", "1e309", "-1e309", "nan", "inf", "x" * 5000, "[", "{}", "[]", "true", "null",
          "99999999999999999999", "1000000000", "-0.0", "1.5", '{"a": 1}', "[1, -2]", "0x10", "1_000", "a:b:a"]


def main() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (LIMIT, LIMIT))
    warnings.simplefilter("ignore")
    from seldon_routers import params, registry
    from seldon_routers.errors import ConfigError

    failed = []
    for name in registry.BUILTINS:
        cls = registry.resolve(name)
        names = [p["name"] for p in params.describe(cls)]
        for parameter in names:
            base = {"n_branches": "3"} if "n_branches" in names and parameter != "n_branches" else {}
            for value in VALUES:
                try:
                    router = params.build(cls, {**base, parameter: value})
                    getattr(router, "close", lambda: None)()
                except ConfigError:
                    pass
                except BaseException as exc:  # noqa: BLE001 - what the test reports
                    failed.append([name, parameter, value[:20], type(exc).__name__, str(exc)[:120]])
    json.dump(failed, sys.stdout)


if __name__ == "__main__":
    main()
