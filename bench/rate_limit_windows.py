"""Sliding versus fixed rate-limit windows, side by side on the same arrivals: one user
sending at twice its RPM for --seconds (simulated time, the gateway's own limiter: an
LLMRouter with rpm set, its clock driven by this script), and a fixed-window counter (a
count per clock minute, reset on the minute: AIBrix's and most gateways' limiter).

Prints, for each, the most requests admitted in any 60-second interval (every interval
starting at an arrival): the sliding log admits at most rpm in each; the fixed window
admits up to 2 x rpm across a minute's boundary, which a burst just before and just after
the boundary shows.

    python bench/rate_limit_windows.py [--rpm 60] [--seconds 180]
"""

from __future__ import annotations

import argparse
import bisect

from seldon_routers.errors import RateLimited
from seldon_routers.registry import resolve
from seldon_routers.request import Feedback, Headers, Request

BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}


def arrivals(rpm: int, seconds: float) -> list[float]:
    """Steady at 2 x rpm, plus a burst of rpm requests either side of each minute boundary."""
    steady = [i * 30.0 / rpm for i in range(int(seconds * rpm / 30))]
    bursts = [m * 60 + d for m in range(1, int(seconds // 60) + 1) for d in (-0.5, 0.5) for _ in range(rpm)]
    return sorted(steady + bursts)


def sliding(times: list[float], rpm: int) -> list[float]:
    now = [0.0]
    router = resolve("least-request")(n_branches=2, rpm=rpm)
    router.clock = lambda: now[0]
    admitted = []
    for t in times:
        now[0] = t
        request = Request(BODY, kind="jsonData", headers=Headers([("user", "alice")]))
        try:
            router.decide(request)
        except RateLimited:
            continue
        admitted.append(t)
        router.learn(Feedback(request, {}, 0.0, None, None, reward_given=False))
    return admitted


def fixed(times: list[float], rpm: int) -> list[float]:
    counts: dict[int, int] = {}
    admitted = []
    for t in times:
        minute = int(t // 60)
        if counts.get(minute, 0) < rpm:
            counts[minute] = counts.get(minute, 0) + 1
            admitted.append(t)
    return admitted


def worst_minute(admitted: list[float]) -> int:
    """The most admissions in any 60-second interval [t, t + 60)."""
    return max((bisect.bisect_left(admitted, t + 60) - i for i, t in enumerate(admitted)), default=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rpm", type=int, default=60)
    parser.add_argument("--seconds", type=float, default=180)
    args = parser.parse_args()
    times = arrivals(args.rpm, args.seconds)
    print(f"{len(times)} requests over {args.seconds:g} s from one user limited to {args.rpm} rpm "
          f"(twice the rate, and bursts at each minute's boundary)")
    print(f"{'limiter':<28}{'admitted':>10}{'most in any 60 s':>18}{'x rpm':>8}")
    for name, admitted in (("sliding log (seldon-routers)", sliding(times, args.rpm)),
                           ("fixed minute window", fixed(times, args.rpm))):
        most = worst_minute(admitted)
        print(f"{name:<28}{len(admitted):>10}{most:>18}{most / args.rpm:>8.2f}")


if __name__ == "__main__":
    main()
