"""Fixtures of the gateway tests."""

import pytest

from llm_pod import LLMPod


@pytest.fixture()
def two_pods():
    pods = [LLMPod(models=["llama"]).start() for _ in range(2)]
    yield pods
    for pod in pods:
        pod.stop()
