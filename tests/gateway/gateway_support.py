"""What the gateway's end-to-end tests share: a gateway process in front of test pods, and
the openai client pointed at it."""

from __future__ import annotations

import contextlib

import openai
import requests

from servers import start_gateway
from support import wait_until

MESSAGES = [{"role": "user", "content": "Say this is a test!"}]


def pods_config(pods, **extra) -> dict:
    return {"pods": [{"name": f"pod-{i}", "url": pod.url, "models": ["llama"]} for i, pod in enumerate(pods)],
            "retry_backoff": 0.01, **extra}


@contextlib.contextmanager
def gateway(config: dict, *args, env=None):
    gw = start_gateway(config, *args, env=env)
    gw.clients = []
    try:
        yield gw
    finally:
        for oa in gw.clients:
            oa.close()
        gw.stop()


def client(gw, **kw) -> openai.OpenAI:
    oa = openai.OpenAI(base_url=gw.url + "/v1", api_key="unused", max_retries=0, **kw)
    gw.clients.append(oa)
    return oa


def in_flight(gw) -> list:
    return requests.get(gw.url + "/state", timeout=5).json()["state"]["in_flight"]


def released(gw, n: int) -> None:
    wait_until(lambda: in_flight(gw) == [0] * n, 5, 0.05, "every request released")
