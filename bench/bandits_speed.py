"""In-process speed of the bandit routers' route and send_feedback, K=10 arms, side by
side with MABWiser (predict, partial_fit) in one run. Prints medians and ratios.

    pip install -e '.[bench]' && python bench/bandits_speed.py [--arms 10] [--batches 400]

Routes and feedbacks alternate, as in service, so every route sees the state the last
feedback left; each is timed apart (less the cost of reading the clock), and a figure is
the median over batches of the mean time per call within a batch of 100. Routers are warmed with 2,000 steps of
Chapelle & Li's setting (best arm 0.5, the others 0.4) before timing, so the state is
not trivially empty.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

TARGET_US = 3.0
BATCH = 100


def median_us(call, batches: int) -> float:
    per_call = []
    for _ in range(batches):
        start = time.perf_counter()
        for _ in range(BATCH):
            call()
        per_call.append((time.perf_counter() - start) / BATCH * 1e6)
    return statistics.median(per_call)


def interleaved_us(route, learn, batches: int) -> tuple[float, float]:
    """route and feedback alternating, as in service (each route sees the state the last
    feedback left), timed apart: medians over batches of the mean time per call."""
    clock = time.perf_counter
    overhead = median_us(clock, 50)  # one clock read, taken out of every timing
    rng = np.random.default_rng(2)
    rewards = (rng.random(batches * BATCH) < 0.45).astype(float).tolist()
    routes, feedbacks, i = [], [], 0
    for _ in range(batches):
        r_sum = f_sum = 0.0
        for _ in range(BATCH):
            t0 = clock()
            arm = route()
            t1 = clock()
            learn(arm, rewards[i])
            t2 = clock()
            r_sum += t1 - t0
            f_sum += t2 - t1
            i += 1
        routes.append(r_sum / BATCH * 1e6 - overhead)
        feedbacks.append(f_sum / BATCH * 1e6 - overhead)
    return statistics.median(routes), statistics.median(feedbacks)


def warm(route, learn, k: int, steps: int = 2000) -> None:
    rng = np.random.default_rng(0)
    means = np.full(k, 0.4)
    means[0] = 0.5
    for _ in range(steps):
        arm = route()
        learn(arm, float(rng.random() < means[arm]))


def ours(name: str, k: int, batches: int) -> tuple[float, float]:
    from seldon_routers import params, registry

    router = params.build(registry.resolve(name), {"n_branches": k, "seed": 0})
    x = np.zeros((1, 1))
    route, learn = (lambda: router.route(x, [])), (lambda a, r: router.send_feedback(x, [], r, None, routing=a))
    warm(route, learn, k)
    return interleaved_us(route, learn, batches)


def reference(policy: str, k: int, batches: int) -> tuple[float, float]:
    from mabwiser.mab import MAB, LearningPolicy

    make = {"thompson-sampling": LearningPolicy.ThompsonSampling, "ucb1": lambda: LearningPolicy.UCB1(alpha=1.0),
            "epsilon-greedy": lambda: LearningPolicy.EpsilonGreedy(epsilon=0.1)}[policy]
    mab = MAB(arms=list(range(k)), learning_policy=make(), seed=0)
    mab.fit(decisions=list(range(k)), rewards=[0.0] * k)
    learn = lambda a, r: mab.partial_fit([a], [r])  # noqa: E731
    warm(mab.predict, learn, k, steps=500)
    return interleaved_us(mab.predict, learn, max(batches // 8, 20))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arms", type=int, default=10)
    p.add_argument("--batches", type=int, default=400)
    args = p.parse_args()
    try:
        import mabwiser  # noqa: F401
        have_mabwiser = True
    except ImportError:
        have_mabwiser = False
        print("(MABWiser is not installed: pip install -e '.[bench]' to compare)")
    print(f"K={args.arms} arms; median microseconds per call (batches of {BATCH})\n")
    print(f"{'policy':<20}{'route':>9}{'feedback':>10}{'MABWiser predict':>18}{'partial_fit':>13}"
          f"{'route x':>9}{'feedback x':>12}   target (<= {TARGET_US:g} us each)")
    failed = False
    for policy in ("epsilon-greedy", "thompson-sampling", "ucb1"):
        r_us, f_us = ours(policy, args.arms, args.batches)
        m_r, m_f = reference(policy, args.arms, args.batches) if have_mabwiser else (float("nan"),) * 2
        gated = policy in ("epsilon-greedy", "thompson-sampling")
        ok = r_us <= TARGET_US and f_us <= TARGET_US
        failed |= gated and not ok
        verdict = ("PASS" if ok else "FAIL") if gated else "(reported)"
        print(f"{policy:<20}{r_us:>9.2f}{f_us:>10.2f}{m_r:>18.2f}{m_f:>13.2f}{m_r / r_us:>8.1f}x{m_f / f_us:>11.1f}x"
              f"   {verdict}")
    print("\nroute x / feedback x: how many times faster ours is than MABWiser on this machine, same run.")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
