"""The supervisor's pure decisions (``engine.decide``), with plain records and a fake clock."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from attachdaemon_core.engine.daemon import Daemon, ExitStatus
from attachdaemon_core.engine.decide.backoff import backoff_delay
from attachdaemon_core.engine.decide.conditions import unmet
from attachdaemon_core.engine.decide.reload import Action, Do, Seen, plan_reload
from attachdaemon_core.engine.decide.start_gate import offer_start, offered_starts
from attachdaemon_core.engine.decide.stop_order import step_wave
from attachdaemon_core.engine.states import State
from attachdaemon_core.spec.model import DaemonSpec

pytestmark = pytest.mark.unit


@dataclass
class Rec:
    """A daemon record as the decisions read it."""

    spec: DaemonSpec
    state: State = State.STOPPED
    pid: int | None = None
    launcher_pid: int | None = None
    ready: bool | None = None
    stopping: bool = False

    @property
    def name(self) -> str:
        return self.spec.name


def spec(name: str, *deps: str, **kw: object) -> DaemonSpec:
    return DaemonSpec(name=name, command=(name,), depends_on=deps, **kw)  # type: ignore[arg-type]


@dataclass
class FakeClock:
    now: float = 0.0
    reads: list[float] = field(default_factory=list)

    def __call__(self) -> float:
        self.reads.append(self.now)
        return self.now


# ---------------------------------------------------------------------- backoff
def test_backoff__daemon_module_reexports_the_one_definition() -> None:
    from attachdaemon_core.engine import daemon

    assert daemon.backoff_delay is backoff_delay


def test_backoff__replayed_with_a_fake_clock() -> None:
    """Quick deaths back off (0, 0.1, 0.2 s …); a run longer than min_uptime resets the count."""
    clock = FakeClock()
    d = Daemon(spec("x", min_uptime=1.0), rand=lambda: 0.5)
    delays = []
    for ran in (0.1, 0.1, 0.1, 5.0, 0.1):
        d.mark_started(100, clock(), 0.0)
        clock.now += ran
        decision = d.decide_after_exit(ExitStatus(1, None, 0.0), clock(), stopping=False)
        delays.append(round(decision.delay, 3))
        clock.now += decision.delay
    assert delays == [0.0, 0.1, 0.2, 0.0, 0.1]


# ---------------------------------------------------------------------- start gate
def test_start_gate__waits_for_dependencies_until_running_and_ready() -> None:
    db = Rec(spec("db"))
    web = Rec(spec("web", "db", "cache"))
    daemons = {"db": db, "web": web}

    def waiting_for() -> list[str]:
        return [w.name for w in unmet(web.spec.requirements(), daemons)]

    assert waiting_for() == ["db", "cache"]
    db.state, db.pid, db.ready = State.RUNNING, 10, False  # running, probe not passed yet
    assert waiting_for() == ["db", "cache"]
    db.ready = True
    assert waiting_for() == ["cache"]


def test_start_gate__offers_a_start_only_to_idle_starting_daemons() -> None:
    idle = Rec(spec("a"), State.STARTING)
    assert offer_start(idle, held=set())
    assert not offer_start(idle, held={"a"})
    assert not offer_start(Rec(spec("b"), State.STARTING, pid=5), held=set())
    assert not offer_start(Rec(spec("c"), State.STARTING, launcher_pid=5), held=set())
    assert not offer_start(Rec(spec("d"), State.BACKOFF), held=set())
    idle.stopping = True
    assert not offer_start(idle, held=set())


def test_start_gate__offered_starts_checks_each_daemon_when_reached() -> None:
    a, b, c = (Rec(spec(n), State.STARTING) for n in "abc")
    seen = []
    for d in offered_starts([a, b, c], held={"c"}):
        seen.append(d.name)
        if d is a:
            b.pid = 7  # starting a started b meanwhile: b is not offered a second start
    assert seen == ["a"]


# ---------------------------------------------------------------------- stop order
def test_stop_order__dependents_stop_before_what_they_depend_on() -> None:
    db = Rec(spec("db"), State.RUNNING, pid=1)
    app = Rec(spec("app", "db"), State.RUNNING, pid=2)
    worker = Rec(spec("worker", "app"), State.RUNNING, pid=3)
    lone = Rec(spec("lone"), State.RUNNING, pid=4)
    daemons = {r.name: r for r in (db, app, worker, lone)}
    step = step_wave(set(daemons), daemons)
    assert sorted(step.stop_now) == ["lone", "worker"] and not step.finished
    lone.stopping = worker.stopping = True
    assert step_wave(step.wave, daemons).stop_now == []  # stops in progress: wait
    worker.pid, worker.stopping, lone.pid = None, False, None  # lone: its stop still finishing
    step = step_wave(step.wave, daemons)
    assert step.stop_now == ["app"] and step.wave == {"app", "db", "lone"}
    app.pid, lone.stopping = None, False
    step = step_wave(step.wave, daemons)
    assert step.stop_now == ["db"]
    db.pid = None
    step = step_wave(step.wave, daemons)
    assert step.wave == set() and step.stop_now == [] and step.finished


def test_stop_order__an_undeclared_or_idle_daemon_leaves_the_wave_and_a_stray_stop_holds_exit() -> None:
    a = Rec(spec("a"))
    other = Rec(spec("other"), stopping=True)  # a stop outside the wave (a restart, say)
    daemons = {"a": a, "other": other}
    step = step_wave({"a", "gone"}, daemons)
    assert step.wave == set() and not step.finished
    other.stopping = False
    assert step_wave(step.wave, daemons).finished


def test_stop_order__a_launch_still_running_keeps_its_daemon_in_the_wave() -> None:
    smart = Rec(spec("s"), State.STARTING, launcher_pid=7)
    step = step_wave({"s"}, {"s": smart})
    assert step.stop_now == ["s"]


# ---------------------------------------------------------------------- reload diff
def plan(
    old: list[DaemonSpec],
    new: list[DaemonSpec],
    seen: dict[str, Seen],
    *,
    reload: bool = True,
    held: frozenset[str] = frozenset(),
) -> list[tuple[Do, str]]:
    actions = plan_reload({s.name: s for s in old}, new, seen, reload=reload, held=held)
    assert all(isinstance(a, Action) for a in actions)
    return [(a.do, a.name) for a in actions]


RUNNING = Seen(State.RUNNING, True)


def test_reload__removed_first_then_added_in_declared_order() -> None:
    got = plan(
        [spec("old"), spec("kept")],
        [spec("b"), spec("kept"), spec("a", autostart=False)],
        {
            "old": RUNNING,
            "kept": RUNNING,
        },
    )
    assert got == [
        (Do.FORGET, "old"),
        (Do.ADD, "b"),
        (Do.START, "b"),
        (Do.RELOAD_RESTART, "kept"),
        (Do.ADD, "a"),
    ]


def test_reload__changed_command_restarts_and_changed_leader_releads() -> None:
    from attachdaemon_core.spec.model import LeaderSpec

    old = [spec("cmd"), spec("lead")]
    new = [
        DaemonSpec(name="cmd", command=("other",)),
        spec("lead", leader=LeaderSpec(lock="file:///tmp/x")),
    ]
    assert plan(old, new, {"cmd": RUNNING, "lead": RUNNING}) == [(Do.RESTART, "cmd"), (Do.RELEAD, "lead")]


@pytest.mark.parametrize(
    ("policy", "expected"),
    [("restart", [(Do.RELOAD_RESTART, "x")]), ("signal", [(Do.RELOAD_SIGNAL, "x")]), ("none", [])],
)
def test_reload__on_reload_policy_applies_to_a_running_daemon(policy: str, expected: list[object]) -> None:
    s = spec("x", on_reload=policy)
    assert plan([s], [s], {"x": RUNNING}) == expected
    assert plan([s], [s], {"x": RUNNING}, reload=False) == []  # a refresh applies no policy


def test_reload__stopped_or_exited_daemons_start_again_unless_held() -> None:
    s = spec("x")
    assert plan([s], [s], {"x": Seen(State.STOPPED, False)}) == [(Do.START, "x")]
    assert plan([s], [s], {"x": Seen(State.EXITED, False)}) == [(Do.START, "x")]
    assert plan([s], [s], {"x": Seen(State.EXITED, False)}, reload=False) == []
    assert plan([s], [s], {"x": Seen(State.STOPPED, False)}, held=frozenset({"x"})) == []
    assert plan([s], [s], {"x": Seen(State.FATAL, False)}) == []
    assert plan([s], [s], {"x": Seen(State.STARTING, False)}) == []  # at the gate: no policy
    assert plan([], [s], {}, held=frozenset({"x"})) == [(Do.ADD, "x")]
