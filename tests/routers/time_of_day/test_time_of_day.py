"""TimeOfDay's decisions in-process, at any instant through an injected clock: weekdays,
midnight-spanning windows and the day they belong to, first match, default and NoRoute,
daylight-saving days in two zones, the per-second cache, weighted and sticky choices,
configuration errors, tags and state."""

import json
import os
import subprocess
import sys
from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np
import pytest
import yaml
from scipy import stats

from seldon_routers import ConfigError, NoRoute, Request, params
from seldon_routers.request import Headers
from seldon_routers.routers.time_of_day import TimeOfDay

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
UTC, LONDON, NEW_YORK = ZoneInfo("UTC"), ZoneInfo("Europe/London"), ZoneInfo("America/New_York")


class Clock:
    """A clock the test sets: POSIX seconds, as time.time returns them."""

    def __init__(self, t=0.0):
        self.t = t

    def __call__(self):
        return self.t


def at(zone, *fields, fold=0) -> float:
    """POSIX seconds of a local wall time (fold=1: the second of a repeated hour)."""
    return datetime(*fields, tzinfo=zone, fold=fold).timestamp()


def utc(*fields) -> float:
    return at(UTC, *fields)


def router_at(config, t=0.0, **kwargs):
    clock = Clock(t)
    return TimeOfDay(config=config, clock=clock, **kwargs), clock


def where(router, clock, t):
    """The window label at instant t ("default" outside every window, None: NoRoute)."""
    clock.t = t
    try:
        tags = router.decide(Request()).tags
    except NoRoute:
        return None
    return "default" if tags.get("default") else tags["window"]


# 2024-01-01 is a Monday.
WEEK = {"timezone": "UTC", "children": ["a", "b", "c", "d"], "default": "d", "windows": [
    {"name": "business", "days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00", "end": "17:30", "to": "a"},
    {"name": "friday-night", "days": ["Friday"], "start": "22:00", "end": "06:00", "to": "b"},
    {"name": "weekend-lunch", "days": "sat-sun", "start": "11:00", "end": "14:00", "to": "c"},
    {"name": "shadowed", "days": "mon", "start": "10:00", "end": "11:00", "to": "c"},  # inside business
    {"name": "evening", "start": "17:00", "end": "24:00", "to": "c"},  # every day
]}


@pytest.mark.parametrize("when, expected", [
    ((2024, 1, 1, 8, 59, 59), "default"),            # Monday, before business
    ((2024, 1, 1, 9, 0, 0), "business"),             # start is inclusive
    ((2024, 1, 1, 10, 30), "business"),              # first match wins over `shadowed`
    ((2024, 1, 1, 17, 29, 59), "business"),
    ((2024, 1, 1, 17, 30), "evening"),               # end is exclusive; the next window takes over
    ((2024, 1, 1, 23, 59, 59), "evening"),           # up to "24:00"
    ((2024, 1, 2, 0, 0), "default"),                 # Tuesday midnight: evening has ended
    ((2024, 1, 5, 21, 59, 59), "evening"),           # Friday
    ((2024, 1, 5, 22, 0), "friday-night"),           # evening is shadowed by the earlier window
    ((2024, 1, 6, 0, 0), "friday-night"),            # Saturday's early hours belong to Friday's window
    ((2024, 1, 6, 5, 59, 59), "friday-night"),
    ((2024, 1, 6, 6, 0), "default"),
    ((2024, 1, 6, 11, 0), "weekend-lunch"),
    ((2024, 1, 7, 13, 59, 59), "weekend-lunch"),     # Sunday, by the range
    ((2024, 1, 1, 11, 0), "business"),               # weekend-lunch is not on Mondays
    ((2024, 1, 7, 23, 0), "evening"),
    ((2024, 1, 8, 1, 0), "default"),                 # Monday's early hours: Sunday has no 22:00 window
    ((2024, 1, 4, 23, 0), "evening"),                # Thursday 23:00 is not Friday's window
    ((2024, 1, 5, 1, 0), "default"),                 # ...nor are Friday's own early hours
])
def test_week_schedule(when, expected):
    router, clock = router_at(WEEK)
    assert where(router, clock, utc(*when)) == expected


def test_tags_name_window_child_and_default():
    router, clock = router_at(WEEK, utc(2024, 1, 1, 9))
    assert router.decide(Request()).tags == {"window": "business", "route": 0, "branch": "a", "propensity": 1.0}
    clock.t = utc(2024, 1, 1, 3)
    assert router.decide(Request()).tags == {"route": 3, "branch": "d", "propensity": 1.0, "default": True}


def test_unnamed_windows_are_labelled_by_index_and_children_by_index_or_name():
    config = {"children": ["a", "b"], "windows": [{"start": "00:00", "end": "12:00", "to": 1},
                                                  {"start": "12:00", "end": "00:00", "to": "0"}]}
    router, clock = router_at(config, utc(2024, 1, 1, 11))
    assert router.decide(Request()).tags["window"] == 0 and router.decide(Request()).child == 1
    clock.t = utc(2024, 1, 1, 23)
    assert router.decide(Request()).tags["window"] == 1 and router.decide(Request()).child == 0


@pytest.mark.parametrize("start, end, inside, outside", [
    ("00:00", "00:00", [(1, 0), (1, 23, 59, 59)], [(2, 0), (7, 12)]),  # end == start: a whole day from the start
    ("09:00", "09:00", [(1, 9), (2, 8, 59, 59)], [(1, 8, 59, 59), (2, 9)]),  # Monday 09:00 to Tuesday 09:00
    ("20:00", "24:00", [(1, 23, 59, 59)], [(2, 0), (1, 19, 59, 59)]),
    ("00:00", "24:00", [(1, 0), (1, 23, 59, 59)], [(2, 0), (7, 23, 59, 59)]),
    ("23:00:30", "00:00:15", [(1, 23, 0, 30), (2, 0, 0, 14)], [(1, 23, 0, 29), (2, 0, 0, 15)]),
])
def test_window_edges_on_a_monday(start, end, inside, outside):
    config = {"children": ["a"], "windows": [{"name": "w", "days": "mon", "start": start, "end": end, "to": "a"}]}
    router, clock = router_at(config)
    for day_time in inside:
        assert where(router, clock, utc(2024, 1, *day_time)) == "w", day_time
    for day_time in outside:
        assert where(router, clock, utc(2024, 1, *day_time)) is None, day_time


def test_outside_every_window_without_default_is_no_route():
    router, clock = router_at({"children": ["a"], "timezone": "Europe/London",
                               "windows": [{"start": "09:00", "end": "17:00", "to": "a"}]}, utc(2024, 7, 1, 20))
    with pytest.raises(NoRoute, match=r"2024-07-01T21:00:00\+01:00 \(Europe/London\) is outside every window") as info:
        router.decide(Request())
    assert (info.value.http_status, info.value.grpc_code, info.value.reason) == (404, "NOT_FOUND", "NO_ROUTE")


def test_day_names_and_ranges():
    def days(spec):
        router, _ = router_at({"children": ["a"], "windows": [{"days": spec, "start": "00:00", "end": "01:00", "to": "a"}]})
        return router.state()["windows"][0]["days"]
    assert days(["MON", "Tuesday", "wed-fri"]) == ["mon", "tue", "wed", "thu", "fri"]
    assert days("fri-mon") == ["mon", "fri", "sat", "sun"]  # a range may wrap around the week
    assert days("sat,sun") == ["sat", "sun"]
    assert days("mon-sun") == ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


# --- daylight saving ---------------------------------------------------------------------
# Europe/London 2024: spring forward Sun 31 Mar at 01:00 UTC (01:00 GMT -> 02:00 BST); fall
# back Sun 27 Oct at 01:00 UTC (02:00 BST -> 01:00 GMT). America/New_York 2024: spring
# forward Sun 10 Mar at 07:00 UTC (02:00 EST -> 03:00 EDT); fall back Sun 3 Nov at 06:00
# UTC (02:00 EDT -> 01:00 EST).

def one_window(zone, start, end, days=None):
    window = {"name": "w", "start": start, "end": end, "to": "a"}
    if days:
        window["days"] = days
    return router_at({"timezone": zone, "children": ["a"], "windows": [window]})


@pytest.mark.parametrize("zone, window, inside, outside", [
    # fall back: 01:30 happens twice, at 00:30 and 01:30 UTC: the window holds two real hours
    ("Europe/London", ("01:00", "02:00", "sun"), [(2024, 10, 27, 0, 0), (2024, 10, 27, 0, 30), (2024, 10, 27, 1, 30),
                                                  (2024, 10, 27, 1, 59, 59)],
     [(2024, 10, 26, 23, 59, 59), (2024, 10, 27, 2, 0)]),
    # spring forward: 01:00-02:00 never happens; 02:00 BST is 01:00 UTC: 30 real minutes
    ("Europe/London", ("01:30", "02:30", "sun"), [(2024, 3, 31, 1, 0), (2024, 3, 31, 1, 29, 59)],
     [(2024, 3, 31, 0, 59, 59), (2024, 3, 31, 1, 30), (2024, 3, 31, 0, 30)]),
    ("Europe/London", ("01:00", "02:00", "sun"), [], [(2024, 3, 31, 0, 59, 59), (2024, 3, 31, 1, 0)]),  # never
    ("America/New_York", ("01:00", "02:00", "sun"), [(2024, 11, 3, 5, 0), (2024, 11, 3, 5, 30), (2024, 11, 3, 6, 30),
                                                     (2024, 11, 3, 6, 59, 59)],
     [(2024, 11, 3, 4, 59, 59), (2024, 11, 3, 7, 0)]),
    ("America/New_York", ("02:30", "03:30", "sun"), [(2024, 3, 10, 7, 0), (2024, 3, 10, 7, 29, 59)],
     [(2024, 3, 10, 6, 59, 59), (2024, 3, 10, 7, 30)]),
    # a midnight-spanning window across spring forward: 22:00 EST Sat to 06:00 EDT Sun, 7 real hours
    ("America/New_York", ("22:00", "06:00", "sat"), [(2024, 3, 10, 3, 0), (2024, 3, 10, 9, 59, 59)],
     [(2024, 3, 10, 2, 59, 59), (2024, 3, 10, 10, 0)]),
    # ...and across fall back: 22:00 EDT Sat to 06:00 EST Sun, 9 real hours
    ("America/New_York", ("22:00", "06:00", "sat"), [(2024, 11, 3, 2, 0), (2024, 11, 3, 10, 59, 59)],
     [(2024, 11, 3, 1, 59, 59), (2024, 11, 3, 11, 0)]),
])
def test_daylight_saving_days(zone, window, inside, outside):
    router, clock = one_window(zone, *window)
    for fields in inside:
        assert where(router, clock, utc(*fields)) == "w", fields
    for fields in outside:
        assert where(router, clock, utc(*fields)) is None, fields


def test_both_occurrences_of_a_repeated_wall_time_are_in_its_window():
    for zone, day in ((LONDON, (2024, 10, 27)), (NEW_YORK, (2024, 11, 3))):
        router, clock = one_window(zone.key, "01:30", "01:31")
        first, second = at(zone, *day, 1, 30, fold=0), at(zone, *day, 1, 30, fold=1)
        assert second - first == 3600
        assert where(router, clock, first) == where(router, clock, second) == "w"
        assert where(router, clock, first - 1) is where(router, clock, second + 60) is None


HOURS = [{"name": f"h{h}", "start": f"{h:02d}:00", "end": f"{h + 1:02d}:00", "to": "a"} for h in range(24)]


@pytest.mark.parametrize("zone, instants", [
    ("America/New_York", [((2024, 11, 3, 4, 59, 59), "h0"), ((2024, 11, 3, 5, 0), "h1"), ((2024, 11, 3, 5, 59, 59), "h1"),
                          ((2024, 11, 3, 6, 0), "h1"), ((2024, 11, 3, 6, 59, 59), "h1"), ((2024, 11, 3, 7, 0), "h2"),
                          ((2024, 3, 10, 6, 59, 59), "h1"), ((2024, 3, 10, 7, 0), "h3"), ((2024, 3, 10, 12, 0), "h8")]),
    ("Europe/London", [((2024, 3, 31, 0, 59, 59), "h0"), ((2024, 3, 31, 1, 0), "h2"), ((2024, 3, 31, 12, 0), "h13"),
                       ((2024, 10, 27, 0, 59, 59), "h1"), ((2024, 10, 27, 1, 0), "h1"), ((2024, 10, 27, 2, 0), "h2"),
                       ((2024, 10, 27, 12, 0), "h12")]),
])
def test_utc_instants_around_transitions_map_to_local_hours(zone, instants):
    router, clock = router_at({"timezone": zone, "children": ["a"], "windows": HOURS})
    for fields, hour in instants:
        assert where(router, clock, utc(*fields)) == hour, fields


def test_timezone_parameter_overrides_the_config():
    config = {"timezone": "UTC", "children": ["a"], "windows": [{"name": "w", "start": "09:00", "end": "10:00", "to": "a"}]}
    router, clock = router_at(config, timezone="Asia/Kolkata")  # +05:30
    assert where(router, clock, utc(2024, 1, 1, 3, 30)) == "w" and where(router, clock, utc(2024, 1, 1, 9)) is None
    assert router.state()["timezone"] == "Asia/Kolkata"


# --- the per-second cache ----------------------------------------------------------------

def test_the_cache_never_serves_a_stale_window_across_a_boundary():
    router, clock = router_at(WEEK)
    start, end = utc(2024, 1, 1, 9), utc(2024, 1, 1, 17, 30)
    for t, expected in [(start - 0.001, "default"), (start, "business"), (start + 0.999, "business"),
                        (start - 0.001, "default"),  # the clock may step back (NTP)
                        (end - 0.001, "business"), (end, "evening"), (end + 0.0005, "evening"),
                        (end - 1.0005, "business")]:
        assert where(router, clock, t) == expected, t - start


def test_the_zone_is_consulted_once_per_second(monkeypatch):
    router, clock = router_at(WEEK, utc(2024, 1, 1, 9) + 0.1)
    calls = []
    active = router.schedule.active
    monkeypatch.setattr(router.schedule, "active", lambda t: calls.append(t) or active(t))
    for i in range(100):
        clock.t = utc(2024, 1, 1, 9) + 0.1 + i * 0.005  # within one second
        router.decide(Request())
    clock.t += 1
    router.decide(Request())
    assert calls == [utc(2024, 1, 1, 9), utc(2024, 1, 1, 9) + 1]


# --- weighted and sticky choices ---------------------------------------------------------

SPLIT = {"children": ["a", "b", "c"], "default": "c", "windows": [
    {"name": "split", "start": "00:00", "end": "12:00",
     "to": [{"child": "a", "weight": 5}, {"child": "b", "weight": 3}, {"child": "c", "weight": 2}]}]}
MORNING = utc(2024, 1, 1, 6)


def counts(router, requests_):
    return np.bincount([router.decide(r).child for r in requests_], minlength=router.n_children)


def test_weighted_window_chi_square_at_a_fixed_seed():
    router, _ = router_at(SPLIT, MORNING, seed=7)
    got = counts(router, [Request()] * 20000)
    assert stats.chisquare(got, np.array([0.5, 0.3, 0.2]) * got.sum()).pvalue > 0.001
    d = router.decide(Request())
    assert d.tags == {"window": "split", "route": d.child, "branch": "abc"[d.child],
                      "propensity": [0.5, 0.3, 0.2][d.child]}


def test_seed_zero_is_a_seed():
    (a, _), (b, _) = router_at(SPLIT, MORNING, seed=0), router_at(SPLIT, MORNING, seed=0)
    assert [a.decide(Request()).child for _ in range(50)] == [b.decide(Request()).child for _ in range(50)]


def user(name, header="x-user-id"):
    return Request(headers=Headers([(header, name)]))


USERS = [f"user-{i}" for i in range(20000)]


def test_sticky_key_spreads_users_by_the_weights():
    router, _ = router_at(SPLIT, MORNING, seed=1, sticky_key="header:x-user-id")
    got = counts(router, [user(u) for u in USERS])
    assert stats.chisquare(got, np.array([0.5, 0.3, 0.2]) * got.sum()).pvalue > 0.001
    assert router.decide(user("u1")).tags["sticky"] is True
    assert "sticky" not in router.decide(Request()).tags  # no key: a random draw


def test_sticky_key_is_stable_across_instances_and_processes():
    config = {**SPLIT, "sticky_key": "header:x-user-id"}
    users = USERS[:200]
    here = [router_at(config, MORNING, seed=s)[0].decide(user(u)) for s, u in enumerate(users)]
    assert all(d.tags["sticky"] is True for d in here)
    code = ("import json, sys\nfrom seldon_routers import Request\nfrom seldon_routers.request import Headers\n"
            "from seldon_routers.routers.time_of_day import TimeOfDay\n"
            "cfg, users, t = json.load(sys.stdin)\nr = TimeOfDay(config=cfg, seed=99, clock=lambda: t)\n"
            "print(json.dumps([r.decide(Request(headers=Headers([('x-user-id', u)]))).child for u in users]))\n")
    out = subprocess.run([sys.executable, "-c", code], input=json.dumps([config, users, MORNING]), capture_output=True,
                         text=True, check=True, env={**os.environ, "PYTHONHASHSEED": "12345"}).stdout
    assert json.loads(out) == [d.child for d in here]


def test_sticky_by_tag_under_seldons_wrapper_and_a_weighted_default():
    config = {"children": ["a", "b"], "sticky_key": "tag:user", "default": ["a", "b"],
              "windows": [{"start": "00:00", "end": "12:00", "to": "a"}]}
    router, clock = router_at(config, utc(2024, 1, 1, 18), seed=3)
    picks = {u: router.route(np.zeros((1, 2)), [], meta={"tags": {"user": u}}) for u in USERS[:300]}
    assert set(picks.values()) == {0, 1} and all(type(p) is int for p in picks.values())
    assert all(router.route(None, [], meta={"tags": {"user": u}}) == c for u, c in picks.items())
    meta = {"puid": "", "tags": {"user": "u1"}, "routing": {}, "requestPath": {}}
    tags = router.decide(Request(meta=meta)).tags
    assert tags["default"] is True and tags["sticky"] is True and tags["propensity"] == 0.5
    assert router.route(np.zeros((1, 2)), []) in (0, 1)  # no meta at all: a random draw


# --- configuration -----------------------------------------------------------------------

def schedule(*windows, **top):
    return {"children": ["a", "b"], "windows": list(windows), **top}


def win(**kw):
    return {"name": "w", "start": "09:00", "end": "17:00", "to": "a", **kw}


@pytest.mark.parametrize("config, match", [
    (schedule(win(end="25:00")), r"windows\[0\] \('w'\).end: '25:00' is not a time of day"),
    (schedule(win(), win(name="late", start="9am")), r"windows\[1\] \('late'\).start: expected \"HH:MM\""),
    (schedule(win(start="24:00")), r"windows\[0\] \('w'\).start: '24:00' is not a time of day"),
    (schedule(win(end="24:01")), r"windows\[0\] \('w'\).end: '24:01' is not a time of day"),
    (schedule(win(start="09:60")), r"windows\[0\] \('w'\).start: '09:60'"),
    (schedule(win(start=1050)), r"windows\[0\] \('w'\).start: expected \"HH:MM\", got the number 1050: quote times"),
    (schedule(win(days=["mon", "funday"])), r"windows\[0\] \('w'\).days: unknown day 'funday'"),
    (schedule(win(days="mon-xyz")), r"windows\[0\] \('w'\).days: unknown day 'xyz'"),
    (schedule(win(days=[])), r"windows\[0\] \('w'\).days: expected a list of days"),
    (schedule(win(to="zzz")), r"windows\[0\] \('w'\).to\[0\].child: unknown child 'zzz' \(children: a, b\)"),
    (schedule(win(to=[{"child": "a", "weight": 1}, {"child": "b"}])), r"windows\[0\] \('w'\).to: set a weight on every"),
    (schedule(win(to=[{"child": "a", "weight": -1}, {"child": "b", "weight": 2}])),
     r"windows\[0\] \('w'\).to weights: weights must be finite and >= 0"),
    (schedule(win(to=[{"child": "a", "timeout": "3s"}])), r"windows\[0\] \('w'\).to\[0\]: unknown key 'timeout'"),
    (schedule({"start": "09:00", "end": "10:00"}), r"windows\[0\].to: missing"),
    (schedule(win(end=None)), r"windows\[0\] \('w'\).end: expected"),
    (schedule({"name": "w", "start": "09:00", "to": "a"}), r"windows\[0\] \('w'\).end: missing"),
    (schedule(win(when="now")), r"windows\[0\] \('w'\): unknown key 'when'"),
    (schedule(win(), win()), r"windows\[1\] \('w'\).name: another window is named 'w'"),
    (schedule(win(name="")), r"windows\[0\] \(''\).name: expected a non-empty string"),
    (schedule("09:00-17:00"), r"windows\[0\]: expected a map"),
    (schedule(win(), timezone="Mars/Olympus"), r"timezone: unknown time zone 'Mars/Olympus'"),
    (schedule(win(), timezone="/etc/passwd"), r"timezone: unknown time zone"),
    (schedule(win(), timezone=3), r"timezone: expected an IANA time zone name"),
    (schedule(win(), default="zzz"), r"default\[0\].child: unknown child 'zzz'"),
    (schedule(win(), sticky_key="cookie:x"), r"sticky_key: expected header:NAME or tag:NAME"),
    (schedule(win(), extra=1), r"config: unknown key 'extra'"),
    (schedule(), r"windows: no windows and no default"),
    ({"children": ["a"], "windows": "09:00-17:00"}, r"windows: expected a list"),
    ({"windows": [win()]}, r"children: name the children"),
    ([win()], r"config: expected a map"),
])
def test_bad_config_names_window_and_field(config, match):
    with pytest.raises(ConfigError, match=match):
        TimeOfDay(config=config)
    with pytest.raises(ConfigError, match=match):  # the same as inline JSON text
        TimeOfDay(config=json.dumps(config))


def test_bad_parameters_name_the_parameter():
    good = schedule(win())
    with pytest.raises(ConfigError, match=r"timezone \(parameter\): unknown time zone 'Nowhere/Land'"):
        TimeOfDay(config=good, timezone="Nowhere/Land")
    for folder_or_long in ("America", "Europe/" + "x" * 300):  # the zone database's folders, OS limits
        with pytest.raises(ConfigError, match=r"timezone \(parameter\): unknown time zone"):
            params.build(TimeOfDay, {"config": json.dumps(good), "timezone": folder_or_long})
    with pytest.raises(ConfigError, match="sticky_key: expected header:NAME or tag:NAME"):
        TimeOfDay(config=good, sticky_key="cookie:x")
    with pytest.raises(ConfigError, match="exactly one of config"):
        TimeOfDay()
    with pytest.raises(ConfigError, match="branch_names"):
        TimeOfDay(config=good, branch_names="x:y")
    with pytest.raises(ConfigError, match="parameter 'clock'"):  # not settable from parameters
        params.build(TimeOfDay, {"config": json.dumps(good), "clock": "time.time"})


def test_yaml_text_and_string_parameters_are_coerced():
    text = "children: [a, b]\nwindows:\n  - {name: w, days: mon-fri, start: '09:00', end: '17:30', to: b}\n"
    router = params.build(TimeOfDay, {"config": text, "seed": "0", "timezone": "Europe/London",
                                      "branch_names": "a:b", "sticky_key": "tag:user"})
    assert router.seed == 0 and router.n_children == 2 and router.branch_names == ["a", "b"]
    assert router.reads_features is False and router.learns is False
    assert router.state()["sticky_key"] == "tag:user" and router.state()["windows"][0]["end"] == "17:30"


# --- state and the example ---------------------------------------------------------------

def test_state_shows_the_schedule_the_active_window_and_the_next_change():
    router, clock = router_at({**WEEK, "timezone": "Europe/London"}, at(LONDON, 2024, 3, 29, 23, 0))  # Friday
    state = router.state()
    assert state["timezone"] == "Europe/London" and state["children"] == ["a", "b", "c", "d"]
    assert state["windows"][1] == {"window": "friday-night", "days": ["fri"], "start": "22:00", "end": "06:00",
                                   "to": {"b": 1.0}}
    assert state["windows"][4]["end"] == "24:00" and state["windows"][4]["days"][-1] == "sun"
    assert state["default"] == {"d": 1.0} and state["sticky_key"] is None
    assert (state["now"], state["active"]) == ("2024-03-29T23:00:00+00:00", "friday-night")
    assert state["next_change"] == "2024-03-30T06:00:00+00:00"
    clock.t = at(LONDON, 2024, 3, 31, 0, 30)  # Sunday; the clocks go forward at 01:00
    assert (router.state()["active"], router.state()["next_change"]) == (None, "2024-03-31T11:00:00+01:00")


@pytest.mark.parametrize("zone, start, end, now, expected", [
    # the window's start falls in the spring gap: the change comes when the clocks jump
    ("Europe/London", "01:30", "02:30", (2024, 3, 31, 0, 10), "2024-03-31T02:00:00+01:00"),
    # fall back: 01:30-02:00 BST ends as the clocks go back to 01:00 GMT, and opens again at 01:30 GMT
    ("Europe/London", "01:30", "02:00", (2024, 10, 27, 0, 40), "2024-10-27T01:00:00+00:00"),
    ("Europe/London", "01:30", "02:00", (2024, 10, 27, 1, 0), "2024-10-27T01:30:00+00:00"),
    ("America/New_York", "01:00", "02:00", (2024, 11, 3, 5, 30), "2024-11-03T02:00:00-05:00"),
])
def test_next_change_across_daylight_saving(zone, start, end, now, expected):
    router, clock = one_window(zone, start, end)
    clock.t = utc(*now)
    assert router.state()["next_change"] == expected


def test_a_schedule_that_never_changes_has_no_next_change():
    router, _ = router_at({"children": ["a"], "windows": [{"start": "00:00", "end": "00:00", "to": "a"}]})
    assert router.state()["next_change"] is None and router.state()["active"] == 0


def test_the_example_schedule_builds_from_its_file_and_its_seldondeployment():
    folder = os.path.join(ROOT, "examples", "time-of-day")
    with open(os.path.join(folder, "seldondeployment.yaml")) as f:
        sd = yaml.safe_load(f)
    graph = sd["spec"]["predictors"][0]["graph"]
    parameters = params.from_seldon_json(json.dumps(graph["parameters"]))
    with open(os.path.join(folder, "schedule.yaml")) as f:
        assert yaml.safe_load(parameters["config"]) == yaml.safe_load(f)
    inline = params.build(TimeOfDay, parameters)
    from_file = TimeOfDay(config_file=os.path.join(folder, "schedule.yaml"))
    assert inline.branch_names == from_file.branch_names == [c["name"] for c in graph["children"]]
    for clock in (inline, from_file):
        clock.clock = Clock(at(LONDON, 2024, 7, 5, 23, 30))  # a Friday night in summer
        assert clock.decide(Request()).tags["window"] == "friday-batch"
