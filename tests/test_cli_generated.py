"""The CLI is generated from the configuration dataclasses: every default equals the Python API's, for every command."""

import argparse
import dataclasses

import pytest

from critdiff.cli import COMMANDS, _modules, build_parser
from critdiff.cli.generate import DEST_PREFIX, _default_text, cli_fields, flag_name
from critdiff.experiments.config import RunConfig


def _subparsers(parser):
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices


def _configs():
    mods = _modules()
    return [(name, mods[name].CONFIG) for name in COMMANDS if hasattr(mods[name], "CONFIG")]


def test_every_command_with_options_declares_its_config():
    names = {name for name, _ in _configs()}
    assert {"sample", "probe", "guide", "train", "train-classifier", "theory", "guide-config"} <= names


@pytest.mark.parametrize("command, cls", _configs(), ids=[n for n, _ in _configs()])
def test_cli_defaults_equal_python_defaults(command, cls):
    sub = _subparsers(build_parser())[command]
    by_dest = {a.dest: a for a in sub._actions}
    fields = cli_fields(cls)
    assert fields, f"{command}: no generated flags"
    for f in fields:
        action = by_dest[DEST_PREFIX + f.name]
        assert flag_name(f) in action.option_strings
        if f.default is dataclasses.MISSING:
            assert action.required
        elif action.default is argparse.SUPPRESS:  # train: only given flags reach the config; help shows the default
            assert f"(default: {_default_text(f.default)})" in action.help or isinstance(f.default, bool)
        else:
            assert action.default == f.default, f"{command} {flag_name(f)}: CLI {action.default!r} != API {f.default!r}"


@pytest.mark.parametrize("command", ["sample", "probe", "guide"])
def test_parsed_config_without_flags_equals_the_dataclass_default(command):
    from critdiff.cli.generate import config_from_args

    cls = _modules()[command].CONFIG
    args = build_parser().parse_args([command, "--out", "x"])
    assert config_from_args(cls, args) == cls()


def test_run_flags_of_train_are_runconfig_fields():
    sub = _subparsers(build_parser())["train"]
    by_dest = {a.dest: a for a in sub._actions}
    for name in ("device", "threads"):
        field = next(f for f in dataclasses.fields(RunConfig) if f.name == name)
        assert by_dest[name].default == field.default and by_dest[name].help.startswith(field.metadata["help"])


def test_flags_parse_types_and_lists():
    from critdiff.cli.generate import config_from_args
    from critdiff.experiments.probe import ProbeConfig

    args = build_parser().parse_args(["probe", "--out", "x", "--eps-scan", "0.1,1", "--no-chi", "--local",
                                      "--steps", "12", "--threads", "1"])
    cfg = config_from_args(ProbeConfig, args)
    assert cfg.eps_scan == (0.1, 1.0) and cfg.chi is False and cfg.equivariant is False and cfg.steps == 12
    assert cfg.threads == 1 and ProbeConfig.from_json(cfg.to_json()) == cfg


def test_usage_error_is_one_line_exit_2(capsys):
    from critdiff.cli import main

    assert main(["sample", "--out", "x", "--steps", "two"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("critdiff: error: argument --steps") and "\n" not in err


def test_required_flag_help_has_no_default():
    """A field without a default becomes a required flag whose help names no default (and no object repr)."""
    import argparse
    from dataclasses import dataclass

    from critdiff.cli.generate import add_config_args
    from critdiff.config import JsonConfig, arg

    @dataclass(frozen=True)
    class Cfg(JsonConfig):
        folder: str = arg(help="a folder")
        n: int = arg(3, "a count")

    p = argparse.ArgumentParser()
    add_config_args(p, Cfg)
    helps = {a.dest.split(".")[-1].lstrip("_"): a for a in p._actions if a.option_strings and a.dest != "help"}
    folder = next(a for k, a in helps.items() if k.endswith("folder"))
    assert folder.required and folder.help == "a folder"
    assert next(a for k, a in helps.items() if k.endswith("n")).help == "a count (default: 3)"
