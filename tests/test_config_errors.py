"""A bad config (unknown key, wrong type, a class_path that does not import) ends with one clear line."""

from __future__ import annotations

import pytest

from src.errors import describe_config_error
from tests.helpers.cli import run_cli_main

CASES = {
    "unknown trainer key": (
        ["--trainer.max_epochz", "3"],
        "error: trainer.max_epochz: unknown option",
    ),
    "unknown optimizer argument": (
        ["--model.init_args.optimizer.init_args.lrr", "0.1"],
        "error: model.init_args.optimizer.init_args.lrr: unknown option of torch.optim.AdamW",
    ),
    "unknown network argument": (
        ["--model.init_args.backbone.init_args.widthz", "[3]"],
        "error: model.init_args.backbone.init_args.widthz: unknown option of src.models.components.ConvNet",
    ),
    "wrong type on the command line": (
        ["--data.init_args.batch_size", "abc"],
        "error: data.init_args.batch_size: expected int, got 'abc'",
    ),
    "class_path that does not import": (
        ["--model.init_args.backbone", "src.models.components.Nope"],
        "error: model.init_args.backbone: class_path 'src.models.components.Nope' does not import: "
        "module 'src.models.components' has no attribute 'Nope'",
    ),
}

YAML_CASES = {
    "unknown key in a YAML file": (
        "trainer:\n  max_epochz: 3\n",
        "error: trainer.max_epochz: unknown option",
    ),
    "unknown datamodule key in a YAML file": (
        "data:\n  init_args:\n    batch_sise: 3\n",
        "error: data.init_args.batch_sise: unknown option of src.data.FashionMNISTDataModule",
    ),
    "wrong type in a YAML file": (
        "trainer:\n  max_epochs: many\n",
        "error: trainer.max_epochs: expected int, got 'many'",
    ),
    "wrong type of an optimizer argument": (
        "model:\n  init_args:\n    optimizer:\n"
        "      class_path: torch.optim.AdamW\n      init_args: {lr: fast}\n",
        "error: model.init_args.optimizer.init_args.lr: expected float, got 'fast'",
    ),
    "module that does not exist": (
        "model:\n  init_args:\n    backbone:\n      class_path: nope.Net\n",
        "error: model.init_args.backbone: class_path 'nope.Net' does not import: No module named 'nope'",
    ),
}


def assert_one_clear_line(status: int, output: str, expected: str) -> None:
    """Exit status 2, the expected `error:` line, and nothing else: no usage text, no traceback."""
    assert status == 2, output
    lines = [line for line in output.splitlines() if line.strip()]
    assert lines == [lines[0]] and lines[0].startswith(expected), output
    assert "Traceback" not in output and "usage:" not in output


@pytest.mark.parametrize("args, expected", CASES.values(), ids=CASES.keys())
def test_bad_command_line_value(args, expected, fast_args, tmp_path, monkeypatch, capsys):
    status, output = run_cli_main(monkeypatch, capsys, ["fit", *fast_args, *args])
    assert_one_clear_line(status, output, expected)
    assert not (tmp_path / "logs").exists()  # stopped before anything was written


@pytest.mark.parametrize("text, expected", YAML_CASES.values(), ids=YAML_CASES.keys())
def test_bad_yaml_value(text, expected, fast_args, overlay, tmp_path, monkeypatch, capsys):
    status, output = run_cli_main(monkeypatch, capsys, ["fit", *fast_args, *overlay(text)])
    assert_one_clear_line(status, output, expected)
    assert not (tmp_path / "logs").exists()


def test_other_subcommands_report_the_same_way(fast_args, monkeypatch, capsys):
    status, output = run_cli_main(monkeypatch, capsys, ["validate", *fast_args, "--trainer.max_epochz", "3"])
    assert_one_clear_line(status, output, "error: trainer.max_epochz: unknown option")


def test_an_unknown_message_keeps_its_first_line():
    assert describe_config_error("something new\n  detail") == "something new"


def test_a_trainer_setting_this_machine_cannot_run_is_one_line(fast_args, monkeypatch, capsys):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    monkeypatch.setattr("torch.cuda.device_count", lambda: 0)
    status, printed = run_cli_main(monkeypatch, capsys, ["fit", *fast_args, "--trainer.accelerator=gpu"])
    assert status == 2
    assert printed.strip().splitlines()[-1].startswith("error: trainer: ")
    assert "gpu" in printed.lower() and "Traceback" not in printed
