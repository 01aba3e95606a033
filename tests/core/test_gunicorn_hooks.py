"""make_hooks: plain functions with gunicorn's arities, marked as ours, over one GunicornHooks object."""

from __future__ import annotations

import inspect
import types

import attachdaemon_core.gunicorn
from attachdaemon_core.hosts.gunicorn import GunicornHooks, Hooks, make_hooks
from attachdaemon_core.hosts.replaced_hooks import HOOK_MARK, replaced_hooks

ARITY = {"on_starting": 1, "on_reload": 1, "on_exit": 1, "nworkers_changed": 3}


def test_the_documented_hooks_keep_their_names_arities_and_module() -> None:
    module = attachdaemon_core.gunicorn
    assert sorted(module.__all__) == sorted(ARITY)
    for name, arity in ARITY.items():
        fn = getattr(module, name)
        assert isinstance(fn, types.FunctionType), name
        assert getattr(fn, HOOK_MARK) == name and fn.__module__ == "attachdaemon_core.gunicorn"
        assert len(inspect.signature(fn).parameters) == arity, name


def test_hooks_made_for_another_module_are_named_after_it_and_share_one_object() -> None:
    made = make_hooks("my.hooks", lambda server: None)  # type: ignore[arg-type,return-value]
    assert isinstance(made, Hooks) and Hooks._fields == tuple(ARITY)
    owners = {id(c.cell_contents) for fn in made for c in fn.__closure__ or ()}
    assert len(owners) == 1
    (cell,) = made.on_exit.__closure__ or ()
    assert isinstance(cell.cell_contents, GunicornHooks) and cell.cell_contents.module == "my.hooks"
    assert all(fn.__module__ == "my.hooks" for fn in made)


def test_a_config_keeping_our_hooks_or_calling_them_is_accepted_one_that_drops_them_is_not() -> None:
    ours = types.SimpleNamespace(
        on_starting=attachdaemon_core.gunicorn.on_starting,
        on_reload=attachdaemon_core.gunicorn.on_reload,
        on_exit=attachdaemon_core.gunicorn.on_exit,
    )
    assert replaced_hooks(ours, "attachdaemon_core.gunicorn") == []

    def on_exit(server: object) -> None:
        attachdaemon_core.gunicorn.on_exit(server)

    assert replaced_hooks(types.SimpleNamespace(on_exit=on_exit), "attachdaemon_core.gunicorn") == []

    def own_exit(server: object) -> None:
        print("bye")

    (problem,) = replaced_hooks(types.SimpleNamespace(on_exit=own_exit), "attachdaemon_core.gunicorn")
    assert problem.startswith("the on_exit hook in the gunicorn configuration is ")
    assert problem.endswith(
        "which never calls attachdaemon's on_exit; call it from yours: `import attachdaemon_core.gunicorn` "
        "at the top, then `attachdaemon_core.gunicorn.on_exit(server)` in your on_exit"
    )
