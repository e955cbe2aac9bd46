import sys
import threading
import time

import cdp


def test_two_threads_track_concurrently(db):
    per_thread = 200
    results = {}
    errors = []
    barrier = threading.Barrier(2)

    def worker(name):
        try:
            barrier.wait()
            out = []
            for i in range(per_thread):
                out.append(db.events.track({"type": "page_view", "email": f"{name}@example.com",
                                            "properties": {"i": i}}))
            results[name] = out
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(n,)) for n in ("left", "right")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors
    assert set(results) == {"left", "right"}
    for name in ("left", "right"):
        assert len(results[name]) == per_thread
        assert len({r["profileId"] for r in results[name]}) == 1
    assert results["left"][0]["profileId"] != results["right"][0]["profileId"]
    event_ids = {r["eventId"] for rs in results.values() for r in rs}
    assert len(event_ids) == 2 * per_thread
    assert db.stats()["events"] == 2 * per_thread
    for name in ("left", "right"):
        pid = results[name][0]["profileId"]
        assert db.profiles.get(pid)["computed"]["eventCount"] == per_thread


def test_engine_calls_release_the_gil(db):
    """While a worker thread is inside engine calls, the main thread runs Python code.

    The switch interval is raised to 10 s, so the interpreter never forces a thread switch during the test: the
    main thread can only observe `in_call` as True if the worker gave the GIL up inside an engine call. The worker
    keeps calling until the main thread has seen it (at most 200 batches), so a slow machine cannot make this flaky.
    """
    batch = [{"type": "page_view", "email": f"g{i % 50}@example.com", "properties": {"i": i}} for i in range(100)]
    state = {"in_call": False, "done": False, "seen": False, "rounds": 0}

    def worker():
        state["in_call"] = True
        while not state["seen"] and state["rounds"] < 200:
            db.events.track_batch(batch)
            state["rounds"] += 1
        state["in_call"] = False
        state["done"] = True

    old = sys.getswitchinterval()
    sys.setswitchinterval(10.0)
    try:
        t = threading.Thread(target=worker)
        t.start()
        while not state["done"]:
            if state["in_call"]:
                state["seen"] = True
            time.sleep(0.001)  # lets the worker run; it can only be preempted inside C++
        t.join()
    finally:
        sys.setswitchinterval(old)
    assert state["seen"], "the main thread never ran while the worker was inside engine calls"
    assert state["rounds"] < 200
    assert db.stats()["events"] == 100 * state["rounds"]


def test_close_waits_for_other_threads(tmp_path):
    db = cdp.open(tmp_path / "db")
    outcomes = []

    def worker():
        for i in range(500):
            try:
                db.events.track({"type": "page_view", "email": "c@example.com", "properties": {"i": i}})
                outcomes.append("ok")
            except cdp.FailedPrecondition:
                outcomes.append("closed")

    t = threading.Thread(target=worker)
    t.start()
    while not outcomes:
        time.sleep(0.001)
    db.close()
    t.join()
    assert outcomes[0] == "ok"
    # Once the first call after close failed, every later one fails too; nothing crashed.
    if "closed" in outcomes:
        first = outcomes.index("closed")
        assert set(outcomes[first:]) == {"closed"}
    n_ok = outcomes.count("ok")
    with cdp.open(tmp_path / "db") as again:
        assert again.stats()["events"] == n_ok
