"""The router's lifecycle hooks under a real `seldon-router serve` process: load() before
the first call, close() once at shutdown, after the last call drained."""

from __future__ import annotations

import signal
import textwrap

import requests

from servers import running_router


def test_close_is_called_once_at_shutdown_after_load(tmp_path):
    (tmp_path / "lifecycle_router.py").write_text(textwrap.dedent("""
        import os
        from seldon_routers import Router

        LOG = os.environ["LIFECYCLE_LOG"]

        class Lifecycle(Router):
            def load(self):
                with open(LOG, "a") as f:
                    f.write("load\\n")

            def decide(self, request):
                return 0

            def close(self):
                with open(LOG, "a") as f:
                    f.write("close\\n")
    """))
    log = tmp_path / "calls.log"
    with running_router("lifecycle_router.Lifecycle", cwd=str(tmp_path),
                        env={"LIFECYCLE_LOG": str(log)}) as rp:
        reply = requests.post(rp.url + "/route", json={"data": {"ndarray": [[1]]}}, timeout=5)
        assert reply.status_code == 200 and reply.json()["meta"]["routing"] == {"0": 0}
        assert log.read_text() == "load\n"  # not closed while serving
        assert rp.stop(signal.SIGTERM) == 0
    assert log.read_text() == "load\nclose\n"
