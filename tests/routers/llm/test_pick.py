"""A strategy's pick (the router's fast path when it is the whole strategy) is always one
of its scores' argmax, with the same tags: a mix and a lone strategy agree."""

import random

import numpy as np
import pytest

from seldon_routers.registry import resolve
from seldon_routers.request import Headers, Request

SYSTEMS = ["You are tenant %d's assistant; answer in the house style. " % t * 4 for t in range(3)]


def body(rng):
    turns = [{"role": "system", "content": rng.choice(SYSTEMS)}]
    for _ in range(rng.randrange(1, 4)):
        turns.append({"role": "user", "content": rng.choice(["hello there", "what is up", "tell me more"]) * 3})
    return {"model": "m", "messages": turns}


@pytest.mark.parametrize("name, params", [
    ("least-request", {}),
    ("session-affinity", {}),
    ("random", {}),
    ("prefix-cache", {"block_size": 16}),
    ("prefix-cache", {"block_size": 16, "prefix_sigma": 0}),
    ("prefix-cache", {"block_size": 16, "prefix_max_imbalance": 2}),
])
def test_pick_is_an_argmax_of_the_scores_with_the_same_tags(name, params):
    rng = random.Random(4)
    router = resolve(name)(n_branches=12, seed=0, **params)
    scorer = router.mix[0][0]
    for i in range(300):  # routes build an index and a spread of loads
        request = Request(body(rng), kind="jsonData")
        router.decide(request)
        if rng.random() < 0.4:
            router.ledger.release(request.puid)
    pods_sets = [list(range(12)), [0, 2, 3, 7, 11]]
    for i in range(300):
        session = [("x-session-id", f"s{rng.randrange(20)}")] if rng.random() < 0.7 else []
        call = router.call_of(Request(body(rng), kind="jsonData", headers=Headers(session)))
        call.counts = [rng.choice([0, 0, 1, 2, 3, 5, 9, 14]) for _ in range(12)]
        pods = pods_sets[i % 2]
        scores = np.asarray(scorer.score(call, pods), dtype=float)
        score_tags = dict(call.tags)
        call.tags.clear()
        if name == "random":  # its scores are draws: the pick is any candidate
            assert scorer.pick(call, pods) in pods
            continue
        best = {pods[j] for j in np.flatnonzero(scores >= scores.max() - 1e-12)}
        assert scorer.pick(call, pods) in best, (call.counts, pods, scores)
        assert call.tags == score_tags
