"""gridflow_common.in_order: one key's turns run one after another in the order they were
taken; other keys' turns do not wait; a failure hands back the turns already waiting behind it."""

import threading

from gridflow_common.in_order import InOrder, Turn

WAIT = 5.0  # bounded: every wait here ends long before this unless the code under test hangs


def _run(turn: Turn, log: list, name: str, release: threading.Event | None = None, fail=False):
    def work():
        try:
            with turn as t:
                log.append((name, "start", t.after_failure))
                if release is not None:
                    assert release.wait(WAIT)
                log.append((name, "end"))
                if fail:
                    raise RuntimeError("handed back")
        except RuntimeError:
            pass

    thread = threading.Thread(target=work)
    thread.start()
    return thread


def test_a_keys_second_turn_waits_for_its_first_even_when_its_worker_starts_first():
    lines = InOrder()
    first, second = lines.turn("police"), lines.turn("police")
    log: list = []
    release = threading.Event()
    later = _run(second, log, "second")
    assert not any(entry[0] == "second" for entry in log)
    earlier = _run(first, log, "first", release)
    release.set()
    earlier.join(WAIT)
    later.join(WAIT)
    assert [e[:2] for e in log] == [
        ("first", "start"),
        ("first", "end"),
        ("second", "start"),
        ("second", "end"),
    ]
    assert len(lines) == 0, "a key whose turns all ended keeps no line"


def test_another_keys_turn_runs_beside_a_busy_one():
    lines = InOrder()
    busy, other = lines.turn("police"), lines.turn("health")
    log: list = []
    release = threading.Event()
    blocked = _run(busy, log, "police", release)
    free = _run(other, log, "health")
    free.join(WAIT)
    assert not free.is_alive()
    assert ("health", "end") in log and ("police", "end") not in log
    release.set()
    blocked.join(WAIT)
    assert ("police", "end") in log


def test_a_failed_turn_hands_back_those_waiting_behind_it_and_not_those_taken_later():
    lines = InOrder()
    first, second, third = (lines.turn("unit") for _ in range(3))
    log: list = []
    release = threading.Event()
    threads = [
        _run(first, log, "first", release, fail=True),
        _run(second, log, "second", fail=True),
        _run(third, log, "third"),
    ]
    release.set()
    for thread in threads:
        thread.join(WAIT)
    starts = {e[0]: e[2] for e in log if e[1] == "start"}
    assert starts == {"first": False, "second": True, "third": True}
    fresh = lines.turn("unit")
    with fresh as turn:
        assert turn.after_failure is False


def test_a_turn_alone_waits_for_nothing():
    with Turn.alone() as turn:
        assert turn.after_failure is False
