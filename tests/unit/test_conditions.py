"""depends_on's conditions and restart = true, one-shots' ends and their reload rules, as the pure
decisions (``engine.decide.conditions``, ``.reload``) and the supervisor's ``Dependents`` decide
them, replayed on plain records with a fake clock (docs/declarations.md, "depends_on" and
"One-shot tasks")."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import pytest

from attachdaemon_core.engine.daemon import Daemon, ExitStatus
from attachdaemon_core.engine.decide.conditions import (
    followers,
    met,
    unmet,
    waiting_text,
    went_down,
)
from attachdaemon_core.engine.decide.reload import Do, Seen, plan_reload
from attachdaemon_core.engine.dependents import Dependents
from attachdaemon_core.engine.loop import Timers
from attachdaemon_core.engine.states import State
from attachdaemon_core.spec.model import DaemonSpec, Dependency

pytestmark = pytest.mark.unit

OK = ExitStatus(0, None, 0.0)
FAILED = ExitStatus(3, None, 0.0)


@dataclass
class Rec:
    """A daemon record as the decisions read it."""

    spec: DaemonSpec
    state: State = State.STOPPED
    pid: int | None = None
    launcher_pid: int | None = None
    ready: bool | None = None
    stopping: bool = False
    last_exit: ExitStatus | None = None

    @property
    def name(self) -> str:
        return self.spec.name


def spec(name: str, *deps: Dependency, **kw: object) -> DaemonSpec:
    return DaemonSpec(
        name=name,
        command=(name,),
        depends_on=tuple(d.name for d in deps),
        dependencies=deps,
        **kw,  # type: ignore[arg-type]
    )


def oneshot(name: str, **kw: object) -> DaemonSpec:
    return spec(name, **{"oneshot": True, "restart": "never", **kw})


# ---------------------------------------------------------------------- the start gate
def test_conditions__ready_started_completed() -> None:
    redis = Rec(spec("redis"), State.STARTING, pid=5)
    migrate = Rec(oneshot("migrate"), State.RUNNING, pid=6, ready=False)
    daemons = {"redis": redis, "migrate": migrate}
    ready, started, completed = (Dependency("redis", c) for c in ("ready", "started", "completed"))
    assert not met(ready, redis) and not met(started, redis)  # spawned, not running yet
    redis.state, redis.ready = State.RUNNING, False  # running, its probe not passed
    assert met(started, redis) and not met(ready, redis)
    redis.ready = True
    assert met(ready, redis)
    assert not met(Dependency("migrate", "completed"), migrate)
    assert met(Dependency("migrate", "started"), migrate)
    assert not met(Dependency("migrate"), migrate)  # ready, on a one-shot: completed
    migrate.state, migrate.pid, migrate.last_exit = State.EXITED, None, OK
    assert met(Dependency("migrate"), migrate) and met(Dependency("migrate", "completed"), migrate)
    assert not met(completed, None)
    assert unmet([Dependency("migrate"), ready, Dependency("nope")], daemons)[0].name == "nope"


def test_conditions__what_a_waiting_daemon_says() -> None:
    redis = Rec(spec("redis"), State.RUNNING, pid=5, ready=False)
    migrate = Rec(oneshot("migrate"), State.RUNNING, pid=6, ready=False)
    beat = Rec(spec("beat"), State.STARTING)  # waiting at its own gate
    daemons = {"redis": redis, "migrate": migrate, "beat": beat}
    reqs = [Dependency("redis"), Dependency("migrate", "completed"), Dependency("beat", "started")]
    waits = unmet(reqs, daemons)
    assert [w.as_status() for w in waits] == [
        {"name": "redis", "condition": "ready", "failed": False, "why": "'redis' to be ready"},
        {"name": "migrate", "condition": "completed", "failed": False, "why": "'migrate' to complete"},
        {"name": "beat", "condition": "started", "failed": False, "why": "'beat' (starting)"},
    ]
    assert waiting_text(waits) == "waiting on 'redis' to be ready, 'migrate' to complete, 'beat' (starting)"
    migrate.state, migrate.pid, migrate.last_exit = State.EXITED, None, FAILED
    redis.state, redis.pid = State.FATAL, None
    waits = unmet(reqs, daemons)
    assert [w.failed for w in waits] == [True, True, False]
    assert waiting_text(waits) == (
        "not starting: daemon 'redis' is fatal; one-shot 'migrate' failed: it exited with status 3; "
        "waiting on 'beat' (starting)"
    )
    assert waiting_text([]) is None


# ---------------------------------------------------------------------- restart = true
@pytest.mark.parametrize(
    ("condition", "old", "new", "down"),
    [
        ("ready", State.RUNNING, State.STOPPING, True),
        ("ready", State.RUNNING, State.STARTING, True),  # died, restarted at once
        ("ready", State.RUNNING, State.BACKOFF, True),
        ("ready", State.STARTING, State.RUNNING, False),
        ("started", State.RUNNING, State.EXITED, False),  # it did start
        ("completed", State.EXITED, State.RUNNING, True),  # a one-shot runs again
        ("completed", State.EXITED, State.STOPPED, True),
        ("completed", State.RUNNING, State.EXITED, False),
    ],
)
def test_went_down(condition: str, old: State, new: State, down: bool) -> None:
    assert went_down(condition, old, new) is down


def test_followers__only_running_dependents_declared_with_restart() -> None:
    redis = Rec(spec("redis"), State.RUNNING, pid=1)
    web = Rec(spec("web", Dependency("redis", restart=True)), State.RUNNING, pid=2)
    worker = Rec(spec("worker", Dependency("redis")), State.RUNNING, pid=3)  # no restart = true
    waiting = Rec(spec("beat", Dependency("redis", restart=True)), State.STARTING)  # at the gate
    stopping = Rec(spec("flower", Dependency("redis", restart=True)), State.STOPPING, pid=4, stopping=True)
    daemons = [redis, web, worker, waiting, stopping]
    assert followers(redis, State.RUNNING, State.STARTING, daemons) == ["web"]
    assert followers(redis, State.STARTING, State.RUNNING, daemons) == []


def test_followers__a_one_shot_run_again_restarts_what_waited_for_its_completion() -> None:
    migrate = Rec(oneshot("migrate"), State.EXITED, last_exit=OK, ready=True)
    web = Rec(spec("web", Dependency("migrate", "ready", restart=True)), State.RUNNING, pid=2)
    assert followers(migrate, State.EXITED, State.RUNNING, [migrate, web]) == ["web"]
    assert followers(migrate, State.RUNNING, State.EXITED, [migrate, web]) == []


# ---------------------------------------------------------------------- one-shot records
def decided(d: Daemon, status: ExitStatus, now: float) -> State:
    """The decision after a run ended, told as the supervisor tells it; its state."""
    decision = d.decide_after_exit(status, now, stopping=False)
    d.tell(decision)
    return decision.state


def test_daemon__a_one_shot_is_ready_once_it_exits_0_and_rests() -> None:
    d = Daemon(oneshot("migrate"))
    d.mark_started(10, 0.0, 0.0)
    assert decided(d, OK, 1.0) == State.EXITED and d.ready is True
    d.mark_started(11, 2.0, 0.0)
    d.ready = False
    assert decided(d, FAILED, 3.0) == State.EXITED and d.ready is None
    retried = Daemon(oneshot("m2", restart="on-failure"))
    retried.mark_started(12, 0.0, 0.0)
    assert decided(retried, FAILED, 5.0) == State.STARTING
    assert retried.ready is None
    plain = Daemon(spec("plain", restart="never"))
    plain.mark_started(13, 0.0, 0.0)
    assert decided(plain, OK, 1.0) == State.EXITED and plain.ready is None


def test_daemon__the_exit_decision_says_readiness_and_the_caller_marks_it() -> None:
    d = Daemon(oneshot("migrate"))
    d.mark_started(10, 0.0, 0.0)
    decision = d.decide_after_exit(OK, 1.0, stopping=False)
    assert decision.ready is True and d.ready is None  # decided, not yet told
    d.tell(decision)
    assert d.ready is True


def test_reload__a_one_shot_runs_again_only_with_rerun_on_reload() -> None:
    once, again = oneshot("once"), oneshot("again", rerun_on_reload=True)
    ended = {"once": Seen(State.EXITED, False), "again": Seen(State.EXITED, False)}

    def plan(seen: dict[str, Seen], *, reload: bool = True) -> list[tuple[str, str]]:
        old = {s.name: s for s in (once, again)}
        return [(a.do, a.name) for a in plan_reload(old, [once, again], seen, reload=reload, held=())]

    assert plan(ended) == [(Do.START, "again")]
    assert plan(ended, reload=False) == []  # a refresh of the declarations: nothing runs again
    failed = {"once": Seen(State.FATAL, False), "again": Seen(State.FATAL, False)}
    assert plan(failed) == [(Do.START, "again")]
    running = {"once": Seen(State.RUNNING, True), "again": Seen(State.RUNNING, True)}
    assert plan(running) == []  # a run in progress finishes
    never = {"once": Seen(State.STOPPED, False), "again": Seen(State.STOPPED, False)}
    assert plan(never) == [(Do.START, "once"), (Do.START, "again")]
    changed = DaemonSpec(name="once", command=("other",), oneshot=True, restart="never")
    got = plan_reload({"once": once}, [changed], {"once": ended["once"]}, reload=True, held=())
    assert got == []  # a new command runs at the next server start, not now


# ---------------------------------------------------------------------- the supervisor's part
class FakeClock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def test_dependents__gate_log_and_restart_propagation(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    timers = Timers(clock)
    restarted: list[str] = []
    redis = Daemon(spec("redis"))
    migrate = Daemon(oneshot("migrate"))
    web = Daemon(spec("web", Dependency("redis", restart=True), Dependency("migrate", "completed")))
    daemons = {d.name: d for d in (redis, migrate, web)}
    offers: list[int] = []
    deps = Dependents(
        daemons,
        timers=timers,
        restart=lambda d: restarted.append(d.name),
        start_waiting=lambda: offers.append(1),
        final=lambda: False,
    )
    for d in daemons.values():
        deps.watch(d)
    caplog.set_level(logging.INFO, logger="attachdaemon")

    web.set_state(State.STARTING)
    assert not deps.may_start(web) and not deps.may_start(web)  # said once in the log
    assert web.error == "waiting on 'redis' (stopped), 'migrate' (stopped)"
    assert [w["name"] for w in deps.waiting_on(web)] == ["redis", "migrate"]
    assert caplog.messages.count(f"daemon 'web' {web.error}") == 1

    migrate.set_state(State.STARTING)
    migrate.mark_started(20, 0.0, 0.0)
    migrate.set_state(State.RUNNING)
    decision = migrate.decide_after_exit(FAILED, 1.0, stopping=False)
    migrate.tell(decision)
    migrate.set_state(decision.state)
    timers.run_due()
    assert offers == [1]  # migrate's changes (web waits on it at the gate): one offer for them all
    assert deps.settled(migrate, decision.state, "(pid 20) exited with status 3")
    assert not deps.may_start(web)
    assert web.error == (
        "not starting: one-shot 'migrate' failed: it exited with status 3; waiting on 'redis' (stopped)"
    )
    assert "one-shot 'migrate' (pid 20) exited with status 3: failed; what depends on it does not start" in (
        caplog.messages
    )
    assert deps.waiting_on(web)[1] == {
        "name": "migrate",
        "condition": "completed",
        "failed": True,
        "why": "one-shot 'migrate' failed: it exited with status 3",
    }

    migrate.set_state(State.STARTING)  # `start migrate`: it runs again and completes
    migrate.mark_started(21, 2.0, 0.0)
    migrate.set_state(State.RUNNING)
    migrate.set_state(decided(migrate, OK, 3.0))
    redis.set_state(State.STARTING)
    redis.mark_started(22, 3.0, 0.0)
    redis.set_state(State.RUNNING)
    redis.ready = True
    assert deps.may_start(web) and deps.waiting_on(web) == []
    web.mark_started(23, 3.0, 0.0)
    web.set_state(State.RUNNING)

    redis.set_state(State.STARTING)  # redis died and is restarted at once: web follows
    assert restarted == []  # not from inside the state change
    timers.run_due()
    assert restarted == ["web"]
    assert "daemon 'web' restarting: 'redis', which it depends on with restart = true, went down" in (
        caplog.messages
    )


def test_dependents__nothing_follows_during_the_final_stop() -> None:
    timers = Timers(FakeClock())
    restarted: list[str] = []
    redis = Daemon(spec("redis"))
    web = Daemon(spec("web", Dependency("redis", restart=True)))
    daemons = {"redis": redis, "web": web}
    deps = Dependents(
        daemons,
        timers=timers,
        restart=lambda d: restarted.append(d.name),
        start_waiting=lambda: restarted.append("offered"),
        final=lambda: True,
    )
    deps.watch(redis)
    for d, pid in ((redis, 1), (web, 2)):
        d.set_state(State.STARTING)
        d.mark_started(pid, 0.0, 0.0)
        d.set_state(State.RUNNING)
    redis.set_state(State.STOPPING)
    timers.run_due()
    assert restarted == [] and len(timers) == 0
