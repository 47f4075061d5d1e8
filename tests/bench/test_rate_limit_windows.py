"""bench/rate_limit_windows.py: the sliding log never admits more than rpm in a 60 s interval,
where the fixed window it is shown beside admits nearly twice that across a boundary."""

import rate_limit_windows as demo


def test_sliding_holds_every_minute_to_the_limit_and_fixed_does_not():
    times = demo.arrivals(rpm=20, seconds=130)
    sliding, fixed = demo.sliding(times, 20), demo.fixed(times, 20)
    assert demo.worst_minute(sliding) == 20
    assert demo.worst_minute(fixed) >= 38
    assert len(sliding) >= 2 * 20  # the limit is used, not just refused
