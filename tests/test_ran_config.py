"""One config per command: every TrainConfig field is a ``fercurate train`` option and every option a field;
the same for EvalConfig and ``fercurate eval``."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import types
import typing

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from fercurate.cli import app
from fercurate.errors import InputError
from fercurate.ran.config import CROP_SET_NAMES, EvalConfig, TrainConfig, config_fields
from fercurate.settings import option_name

CLI_ONLY = {"resume", "workspace"}  # options that are not settings of the run


def _train_command():  # noqa: ANN202 - a click command
    return get_command(app).commands["train"]


def test_every_config_field_has_a_cli_option_and_vice_versa() -> None:
    params = {p.name: p for p in _train_command().params if p.name != "help"}
    fields = {f.name for f in config_fields()}
    assert fields - set(params) == set(), "TrainConfig fields without a `fercurate train` option"
    assert set(params) - fields - CLI_ONLY == set(), "`fercurate train` options that are no TrainConfig field"
    for f in config_fields():
        assert f.metadata.get("help"), f"TrainConfig.{f.name} has no help text"
        assert option_name(f) in params[f.name].opts, f"{f.name}: expected {option_name(f)}, got {params[f.name].opts}"


def _sample_value(f: dataclasses.Field, hint) -> tuple[list[str], object]:  # noqa: ANN001
    """Command-line words for a non-default value of field ``f`` and the value TrainConfig should get."""
    flag = option_name(f)
    default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
    choices = f.metadata.get("choices")
    union = typing.get_origin(hint) in (typing.Union, types.UnionType)
    base = next(a for a in typing.get_args(hint) if a is not type(None)) if union else hint
    if choices:
        value = next(c for c in choices if c != default)
        return [flag, str(value)], value
    if base is bool:
        return ([f"--no-{flag[2:]}"], False) if default else ([flag], True)
    if typing.get_origin(base) is list:
        if f.metadata.get("repeat"):
            return [flag, "a", flag, "b"], ["a", "b"]
        if int in typing.get_args(base):
            return [flag, "3,5"], [3, 5]
        return [flag, "layer1,layer2"], ["layer1", "layer2"]
    if base is int:
        return [flag, "3"], 3
    if base is float:
        return [flag, "0.375"], 0.375
    return [flag, f"value-of-{f.name}"], f"value-of-{f.name}"


def _every_option(settings: type) -> tuple[list[str], dict[str, object]]:
    """Command-line words giving every field of ``settings`` a non-default value, and the values expected."""
    hints = typing.get_type_hints(settings)
    args: list[str] = []
    expected: dict[str, object] = {}
    for f in dataclasses.fields(settings):
        words, value = _sample_value(f, hints[f.name])
        args += words
        expected[f.name] = value
    return args, expected


def _assert_landed(config: object, expected: dict[str, object]) -> None:
    got = dataclasses.asdict(config)
    wrong = {k: (got[k], v) for k, v in expected.items() if got[k] != v}
    assert not wrong, f"options that did not reach their field (got, expected): {wrong}"


def test_each_option_lands_in_its_config_field(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    import fercurate.ran.train as ran_train

    seen: list[TrainConfig] = []

    def fake_train(config: TrainConfig, **kw):  # noqa: ANN003, ANN202 - stands in for the trainer
        seen.append(config)
        raise SystemExit(0)

    monkeypatch.setattr(ran_train, "train", fake_train)
    args, expected = _every_option(TrainConfig)
    res = CliRunner().invoke(app, ["train", *args, "--workspace", str(tmp_path)])
    assert res.exit_code == 0, res.output
    _assert_landed(seen[0], expected)


def test_bad_choice_names_the_option() -> None:
    cfg = TrainConfig(manifest="m.parquet", out="o", align="mtcnn")
    with pytest.raises(InputError, match="--align must be bbox or dlib5"):
        cfg.resolved()
    with pytest.raises(InputError, match="--attention must be sigmoid or softmax"):
        TrainConfig(manifest="m.parquet", out="o", attention="tanh").resolved()
    with pytest.raises(InputError, match="needs the face cache"):
        TrainConfig(manifest="m.parquet", out="o", align="dlib5", crops="landmark", cache=False).resolved()


def test_crop_set_names_match_the_boxes() -> None:
    from fercurate.ran.crops import CROP_NAMES, CROP_SETS

    assert tuple(CROP_SETS) == CROP_SET_NAMES == tuple(CROP_NAMES)


def test_help_lists_the_paper_preprocessing_flags() -> None:
    res = CliRunner().invoke(app, ["train", "--help"], terminal_width=200)
    assert res.exit_code == 0
    for flag in ("--align", "--landmark-clip", "--random-crops", "--random-eval-crops", "--landmark-scale",
                 "--attention", "--crop-set", "--log-every"):
        assert flag in res.output


def test_config_module_is_light() -> None:
    """The CLI builds ``train``'s options from the config at import: that must not pull in torch."""
    code = "import sys, fercurate.cli.train, fercurate.ran.config; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_setting_and_option_name_moved_to_fercurate_settings() -> None:
    import fercurate.ran.config as old
    from fercurate import settings

    assert old.setting is settings.setting  # still what TrainConfig's fields are made with
    with pytest.warns(DeprecationWarning, match="fercurate.ran.config.option_name moved to fercurate.settings"):
        from fercurate.ran.config import option_name as old_option_name
    assert old_option_name is settings.option_name


EVAL_CLI_ONLY = {"model", "workspace"}


def test_every_eval_config_field_is_an_eval_option_and_vice_versa() -> None:
    params = {p.name: p for p in get_command(app).commands["eval"].params if p.name != "help"}
    fields = {f.name: f for f in dataclasses.fields(EvalConfig)}
    assert set(params) - EVAL_CLI_ONLY == set(fields)
    for name, f in fields.items():
        assert f.metadata.get("help"), f"EvalConfig.{name} has no help text"
        assert option_name(f) in params[name].opts
    # today's option names and short forms
    flags = {o for p in params.values() for o in p.opts + p.secondary_opts}
    assert {"--bootstrap", "-j", "--workers", "--report", "--labels", "--input-size", "--input-norm", "-m", "-b",
            "--split", "--subset", "--overwrite", "--no-cache", "--save-probs", "--draw-attention", "-w"} <= flags


def test_each_eval_option_lands_in_its_config_field(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    import fercurate.ran.evaluate as ran_evaluate

    seen: list[EvalConfig] = []

    def fake_evaluate(model, config, **kw):  # noqa: ANN001, ANN003, ANN202 - stands in for the evaluator
        seen.append(config)
        raise SystemExit(0)

    monkeypatch.setattr(ran_evaluate, "evaluate", fake_evaluate)
    args, expected = _every_option(EvalConfig)
    res = CliRunner().invoke(app, ["eval", "--model", "m.pt", *args, "--workspace", str(tmp_path)])
    assert res.exit_code == 0, res.output
    _assert_landed(seen[0], expected)
    CliRunner().invoke(app, ["eval", "--model", str(tmp_path / "ran.pt"), "--subset", "pose45", "-w", str(tmp_path)])
    assert seen[1].report_dir == str(tmp_path / "eval" / "ran-pose45")  # the command's default report folder
