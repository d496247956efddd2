"""Rate budgets: the daemon paces itself under the configured requests per minute
across all its worker threads (so it never causes a 429 itself), and Jira's
per-issue write limit delays that one issue while the others keep flowing."""

from __future__ import annotations

import heapq
import time

from syncd.budget import Budget
from syncd.sandbox import World

from .conftest import SQLITE_ONLY, comments_with, get, tune, wait_for


def _escalate_many(world: World, n: int) -> list[tuple[int, str]]:
    """Escalate ``n`` tickets at once; returns (ticket, key) pairs (read from the simulator)."""
    tickets = [world.zendesk.create_ticket(f"Burst {i}", "Fails.") for i in range(n)]
    for t in tickets:
        world.zendesk.agent_set(t, add_tags=["jira_escalate"])
    fid = world.field_id(9001)

    def key_of(t: int) -> str | None:
        with world.zendesk.lock:
            values = {f["id"]: f["value"] for f in world.zendesk.ticket_json(world.zendesk.tickets[t])["custom_fields"]}
        return values.get(fid)

    assert wait_for(lambda: all(key_of(t) for t in tickets), timeout=20)
    return [(t, str(key_of(t))) for t in tickets]


def _max_in_window(stamps: list[float], window: float) -> int:
    stamps = sorted(stamps)
    best, lo = 0, 0
    for hi, t in enumerate(stamps):
        while t - stamps[lo] >= window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


@SQLITE_ONLY
def test_fault_budget_paces_all_workers_under_the_account_limit(make_world, start_daemon):
    world = make_world(workers=4)
    first = start_daemon(world)
    pairs = _escalate_many(world, 12)   # enough work that the pacing shows (> 30 calls)
    assert wait_for(lambda: first.store.queue_depth() == 0, timeout=10)
    first.stop()
    # The admin sets the budget to 10 requests a second (5 saved up at most) and restarts.
    tune(world, {"zendesk": 600}, None)
    daemon = start_daemon(world)

    # The account allows just above the budget: 5 + 10/s over a 2 s window is 25.
    world.zendesk.knobs.rate_window, world.zendesk.knobs.rate_limit = 2.0, 27
    world.zendesk.clear_records()
    started = time.monotonic()
    # Each round lands before the next: three reconciles a ticket (~70 calls). Sent all at
    # once, the rounds could coalesce into one reconcile a ticket (~24 calls; a clean run
    # on an idle machine made exactly 30), too little to show the pacing.
    for round_ in range(3):
        for t, _ in pairs:
            world.zendesk.customer_reply(t, f"Reply {round_} on {t}.")
        assert wait_for(lambda: all(comments_with(world, k, f"Reply {round_} on {t}.") == 1 for t, k in pairs),
                        timeout=40)
    assert wait_for(lambda: daemon.store.queue_depth() == 0, timeout=20)
    elapsed = time.monotonic() - started

    records = [r for r in world.zendesk.records() if not r.operation.startswith("_sim")]
    assert len(records) > 30, f"too little work to show any pacing: {len(records)} calls"
    assert [r for r in records if r.status == 429] == [], "the daemon drove the account into 429"
    # Paced: never more than burst + rate in any second, and the burst took as long as the budget says.
    assert _max_in_window([r.at for r in records], 1.0) <= 5 + 10 + 2
    assert elapsed >= (len(records) - 5) / 10 * 0.9
    for t, k in pairs:
        assert all(comments_with(world, k, f"Reply {i} on {t}.") == 1 for i in range(3))
    metrics = get(daemon, "/metrics").text
    assert 'syncd_budget_requests_per_minute{vendor="zendesk"} 600' in metrics
    waited = float(next(line.split()[-1] for line in metrics.splitlines()
                        if line.startswith('syncd_budget_wait_seconds_total{vendor="zendesk"}')))
    assert waited > 0


@SQLITE_ONLY
def test_fault_jira_per_issue_limit_delays_that_issue_only(make_world, start_daemon, logs):
    world = make_world()
    daemon = start_daemon(world)
    (ta, ka), (tb, kb) = _escalate_many(world, 2)
    assert wait_for(lambda: daemon.store.queue_depth() == 0, timeout=10)
    world.jira.configure({"issue_write_limit": [1, 3]})   # one write per issue per 3 s
    world.zendesk.customer_reply(ta, "First on A.")
    assert wait_for(lambda: comments_with(world, ka, "First on A.") == 1)
    world.zendesk.customer_reply(ta, "Second on A.")        # A has just been written: 429 for A
    sent = time.monotonic()
    world.zendesk.customer_reply(tb, "First on B.")
    assert wait_for(lambda: comments_with(world, kb, "First on B.") == 1, every=0.02)
    b_seconds = time.monotonic() - sent
    assert comments_with(world, ka, "Second on A.") == 0, "A was not throttled: the test proves nothing"
    assert wait_for(lambda: comments_with(world, ka, "Second on A.") == 1, timeout=15, every=0.02)
    a_seconds = time.monotonic() - sent

    assert b_seconds < 1.5, f"B waited {b_seconds:.2f}s behind A limit"
    assert a_seconds > b_seconds + 0.5
    limited = [r for r in world.jira.records() if r.status == 429]
    assert limited and all(ka_id(world, ka) in r.path for r in limited)
    deferred = logs.named("item_deferred")
    assert deferred and all(e["scope"] == "jira-per-issue-on-write" for e in deferred)
    time.sleep(0.5)
    assert comments_with(world, ka, "Second on A.") == 1 and comments_with(world, kb, "First on B.") == 1


def ka_id(world: World, key: str) -> str:
    with world.jira.lock:
        return str(world.jira.issue(key).id)


# -- the budget alone (a fake clock, no daemon) ---------------------------------

class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _drain(budget: Budget, clock: _Clock, calls: int, threads: int = 4, think: float = 0.01) -> list[float]:
    """``threads`` callers each take a token, wait for it, make the call (``think``
    seconds) and take the next one: a backlog. Returns the times the calls went out."""
    ready = [(clock.now, n) for n in range(threads)]
    heapq.heapify(ready)
    sent: list[float] = []
    for _ in range(calls):
        at, n = heapq.heappop(ready)
        clock.now = max(clock.now, at)
        due = clock.now + budget.reserve()
        sent.append(due)
        heapq.heappush(ready, (due + think, n))
    return sent


def test_budget_never_exceeds_per_minute_in_any_minute_even_after_a_saved_burst():
    """The bucket alone let the saved burst plus a full minute's rate through in
    one minute (700 + 5 at 700/min): a sliding-minute account answers 429."""
    clock = _Clock()
    budget = Budget(120, burst=5, clock=clock)
    clock.now += 30.0                     # idle: the burst is saved up
    sent = _drain(budget, clock, 1000)
    assert sent == sorted(sent)
    assert _max_in_window(sent, 60.0 + budget.slack) <= 120
    # ... and no slower than that: 120 calls per 61 s under a sustained backlog.
    assert sent[-1] - sent[0] <= len(sent) / 120 * 61.0


def test_budget_replica_share_counts_whole_calls_per_minute():
    clock = _Clock()
    budget = Budget(700 / 3, clock=clock)     # three replicas share 700/min
    sent = _drain(budget, clock, 1500)
    assert _max_in_window(sent, 61.0) <= 233


def test_budget_pause_spends_the_next_seconds():
    clock = _Clock()
    budget = Budget(600, clock=clock)
    budget.reserve()
    budget.pause(5.0)
    assert budget.reserve() >= 5.0


def test_budget_hold_delays_only_its_target_and_refuses_a_long_wait_up_front():
    from syncd.budget import WaitTooLong
    clock = _Clock()
    budget = Budget(600, clock=clock)
    budget.hold("ticket:1", 30.0)
    assert budget.held("ticket:1") == 30.0 and budget.held("ticket:2") == 0.0
    used = budget.used
    try:
        budget.acquire("ticket:1", max_wait=5.0)
        raise AssertionError("a 30 s hold was waited out inside a reconcile")
    except WaitTooLong as e:
        assert e.wait == 30.0 and e.scope == "ticket:1"
    assert budget.used == used, "a refused wait took a budget slot"
    budget.acquire("ticket:2", max_wait=5.0)          # another ticket goes at once
    clock.now += 30.0
    assert budget.held("ticket:1") == 0.0


def test_budget_account_gate_refuses_a_long_wait_without_taking_a_slot():
    from syncd.budget import WaitTooLong
    clock = _Clock()
    budget = Budget(600, clock=clock)
    budget.pause(20.0)
    used = budget.used
    try:
        budget.acquire("ticket:9", max_wait=5.0)
        raise AssertionError("a 20 s account gate was waited out inside a reconcile")
    except WaitTooLong as e:
        assert e.wait >= 20.0 and e.scope == "account"
    assert budget.used == used


def test_zendesk_429_scope_told_apart_by_the_account_signals():
    from syncd.connectors.calls import rate_limit_scope
    account_body = '{"error":"APIRateLimitExceeded","description":"Number of allowed API requests per minute exceeded"}'
    ticket_body = ('{"error":"APIRateLimitExceeded","description":"Rate limit for ticket updates exceeded, '
                   'please wait before updating this ticket again"}')
    assert rate_limit_scope("zendesk", {"Retry-After": "10", "X-Rate-Limit-Remaining": "0"}, ticket_body) is None
    assert rate_limit_scope("zendesk", {"Retry-After": "10"}, account_body) is None
    assert rate_limit_scope("zendesk", {"Retry-After": "34", "X-Rate-Limit": "700",
                                        "X-Rate-Limit-Remaining": "612"}, ticket_body) == "zendesk-ticket-updates"
    assert rate_limit_scope("jira", {"RateLimit-Reason": "jira-per-issue-on-write"}, "") == "jira-per-issue-on-write"
    assert rate_limit_scope("jira", {"RateLimit-Reason": "jira-burst-based"}, "") == "jira-burst-based"
    assert rate_limit_scope("intercom", {"X-RateLimit-Reset": "1"}, "") is None


def test_budget_gate_holds_back_a_call_already_waiting_for_its_slot():
    """Issue 12, finding 3: a call that had reserved a slot before the 429 went out at
    the slot's time, before the time the vendor had named."""
    import threading
    budget = Budget(60, burst=1)          # one call a second, real clock
    budget.acquire()                      # the saved token: the next call waits ~1 s for its slot
    went: list[float] = []
    waiter = threading.Thread(target=lambda: (budget.acquire(), went.append(time.monotonic())))
    waiter.start()
    time.sleep(0.2)                       # it is waiting for its slot now
    allowed = time.monotonic() + 2.0
    budget.pause(2.0)                     # a 429 with Retry-After: 2 arrives meanwhile
    waiter.join(15)
    assert went and went[0] >= allowed - 0.01, "a waiting call went out before the time the 429 named"


def test_budget_after_a_gate_one_probe_goes_alone_until_answered():
    import threading
    budget = Budget(6000, burst=10)
    budget.pause(0.3)
    permits: list = []
    lock = threading.Lock()

    def call() -> None:
        permit = budget.acquire()
        with lock:
            permits.append(permit)

    threads = [threading.Thread(target=call) for _ in range(3)]
    for t in threads:
        t.start()
    assert wait_for(lambda: len(permits) >= 1, timeout=10)
    time.sleep(0.5)
    assert len(permits) == 1 and permits[0].probe, "others went out beside the probe"
    budget.done(permits[0], limited=False)   # the probe was answered: the gate opens for all
    for t in threads:
        t.join(10)
    assert len(permits) == 3 and [p.probe for p in permits[1:]] == [False, False]
