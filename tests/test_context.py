"""The runner context (critdiff.experiments.context): every experiment is ``run(cfg, ctx) -> Result`` and the
context owns the output folder, the executor, the progress bar and the log."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import pytest

from critdiff.experiments.context import Context, as_context
from critdiff.experiments.executors import SerialExecutor
from critdiff.experiments.kinds import KINDS, run_function
from critdiff.experiments.result import RESULT_FILE
from critdiff.experiments.theory_section import TheoryConfig, TheoryResult, run_theory

LOOSE = ("out_dir", "progress", "log", "executor")  # what the context supplies: no experiment takes them itself


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_kind_runs_as_run_cfg_ctx(kind):
    params = list(inspect.signature(run_function(kind)).parameters.values())
    assert [p.name for p in params[:2]] in (["cfg", "ctx"], ["spec", "ctx"])
    assert not [p.name for p in params if p.name in LOOSE]


def test_as_context_takes_a_folder_a_context_or_none(tmp_path):
    ctx = as_context(str(tmp_path / "a"))
    assert ctx.out == tmp_path / "a" and ctx.progress and isinstance(ctx.executor, SerialExecutor)
    assert as_context(ctx) is ctx
    assert as_context(None).out is None
    with pytest.raises(TypeError, match="ctx: expected a Context"):
        as_context(3)
    with pytest.raises(TypeError, match="out: expected a folder"):
        Context(3)


def test_folder_is_made_on_demand_and_refused_without_one(tmp_path):
    ctx = Context(tmp_path / "x" / "y")
    assert not ctx.out.exists()
    assert ctx.folder() == tmp_path / "x" / "y" and ctx.out.is_dir()
    with pytest.raises(ValueError, match="out: this experiment writes files"):
        Context().folder()


def test_quiet_context_shows_no_bar_and_drops_lines(tmp_path, capsys):
    ctx = Context.quiet(tmp_path)
    with ctx.bar(3, "x") as bar:
        bar.update(1)
        ctx.log("a line")
    assert not ctx.progress and capsys.readouterr() == ("", "")
    assert ctx.replace(out=tmp_path / "b").out == tmp_path / "b"


def test_log_lines_go_through_the_context(tmp_path):
    lines = []
    ctx = Context(tmp_path, progress=False, log=lines.append)
    with ctx.bar(2, "x"):
        ctx.log("hello")
    assert lines == ["hello"]


def test_save_writes_the_record_only_with_a_folder(tmp_path):
    result = run_theory(TheoryConfig(data="stripes:size=8,wavelength=4,n=20", stencil="square:3"), None)
    assert isinstance(result, TheoryResult)
    assert Context().save(result) is None
    path = Context(tmp_path / "t").save(result)
    assert Path(path) == tmp_path / "t" / RESULT_FILE
    assert json.loads(Path(path).read_text()) == json.loads(json.dumps(result.record()))
