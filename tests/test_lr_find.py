"""`python -m src.lr_find`: a learning-rate range test that keeps the config's per-group scales."""

from __future__ import annotations

import pytest
import yaml

from src.lightning_cli import cli_main
from src.lr_find import main
from src.lr_finder import LRRangeTest
from tests.helpers.cli import REPO, error_lines, run_command


def test_suggests_a_rate_writes_a_config_and_the_groups_follow_their_scales(fast_args, tmp_path, capsys):
    overlay, plot = tmp_path / "lr.yaml", tmp_path / "lr.png"
    args = [*fast_args, "--num-steps", 30, "--write-config", overlay, "--plot", plot]
    code, out, err = run_command(main, args, capsys)
    assert code == 0, err
    suggested = yaml.safe_load(overlay.read_text())["model"]["init_args"]["optimizer"]["init_args"]["lr"]
    assert f"Suggested base learning rate: {suggested:.3g} (30 steps, 1e-06 to 1)" in out
    assert f"  head: {suggested * 0.5:.3g}" in out and plot.stat().st_size > 0
    assert 1e-6 <= suggested <= 1.0
    # Training with the overlay: every group at the suggestion times its scale (configs/fashion_mnist.yaml:
    # the head at 0.5, the rest at 1).
    cli = cli_main([*fast_args, "--config", str(overlay)], run=False)
    optimizer = cli.model.configure_optimizers()["optimizer"]
    rates = {g["name"]: g["lr"] for g in optimizer.param_groups}
    assert rates == pytest.approx({"head": suggested * 0.5, "no_decay": suggested, "default": suggested})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lr.png", "lr.yaml"]  # no logs, checkpoints, config


def test_each_group_is_swept_at_its_scale(fast_args):
    cli = cli_main(
        [*fast_args, "--trainer.max_steps=20", "--trainer.max_epochs=-1", "--trainer.logger=false"], run=False
    )
    finder = LRRangeTest(1e-5, 1e-2, num_steps=20)
    cli.trainer.callbacks.append(finder)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    rates = {g["name"]: g["lr"] for g in cli.trainer.optimizers[0].param_groups}
    assert rates == pytest.approx({"head": 0.5 * 1e-2, "no_decay": 1e-2, "default": 1e-2})  # the last step's
    assert len(finder.lrs) == len(finder.losses) == 20
    assert finder.lrs[0] == pytest.approx(1e-5) and finder.lrs[-1] == pytest.approx(1e-2)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--min-lr", "1", "--max-lr", "0.1"],
            "error: --min-lr, --max-lr: need 0 < min < max, got 1.0 and 0.1",
        ),
        (["--num-steps", "5"], "error: --num-steps: at least 20 are needed, got 5"),
        (["--write-config", "lr.txt"], "error: --write-config: lr.txt must end with .yaml or .yml"),
    ],
)
def test_bad_options_are_one_error_line(fast_args, capsys, args, message):
    code, _, err = run_command(main, [*fast_args, *args], capsys)
    assert code == 1 and error_lines(err) == [message]


def test_a_config_with_warmup_and_cosine_gets_no_schedule_in_the_range_test(fast_args, tmp_path, capsys):
    recipe = ["--config", str(REPO / "configs" / "recipe" / "strong.yaml")]
    args = [*fast_args, *recipe, "--num-steps", 20, "--plot", tmp_path / "lr.png"]
    code, out, err = run_command(main, args, capsys)
    assert code == 0, err
    assert "Suggested base learning rate:" in out
