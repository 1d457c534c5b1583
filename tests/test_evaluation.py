"""Evaluation figures: confusion matrix and misclassified grid in TensorBoard, per-class test accuracy."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from src.callbacks import EvaluationFigures
from src.callbacks.evaluation import _metric_keys, misclassified_figure, per_class_scores, per_class_table
from src.lightning_cli import cli_main
from tests.helpers.cli import fast_cli_args

FIGURE_TAGS = ["val/confusion_matrix", "val/misclassified", "test/confusion_matrix", "test/misclassified"]


def _events(cli) -> EventAccumulator:
    run_dir = Path(cli.trainer.logger.log_dir)
    return EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "images": 0}).Reload()


def _improved_steps(events: EventAccumulator) -> list[int]:
    """Steps at which `val/acc` beat every earlier value (the first one always does)."""
    steps, best = [], None
    for event in events.Scalars("val/acc"):
        if best is None or event.value > best:
            steps.append(event.step)
            best = event.value
    return steps


def _callback(cli) -> EvaluationFigures:
    return next(cb for cb in cli.trainer.callbacks if isinstance(cb, EvaluationFigures))


@pytest.fixture(scope="module")
def evaluated(fashion_mnist_root, tmp_path_factory):
    """One short fit (which ends with a test of the best checkpoint), with what it printed."""
    out = tmp_path_factory.mktemp("evaluated")
    args = ["fit", *fast_cli_args(fashion_mnist_root, out)]
    args += ["--trainer.max_epochs=2", "--trainer.limit_train_batches=2"]
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        cli = cli_main(args)
    cli.printed = printed.getvalue()
    return cli


def test_fit_and_test_log_the_figures(evaluated):
    events = _events(evaluated)
    assert set(FIGURE_TAGS) <= set(events.Tags()["images"])
    for tag in FIGURE_TAGS:
        image = events.Images(tag)[-1]
        stage = tag.split("/")[0]
        if tag.endswith("misclassified") and _callback(evaluated).confusion_matrices[stage].diag().sum() == (
            _callback(evaluated).confusion_matrices[stage].sum()
        ):
            assert (image.width, image.height) == (300, 100)  # all correct: the "no misclassified" note
        else:
            assert image.width > 100 and image.height > 100
    # Figures sit at the step of the scalars of the same evaluation.
    assert events.Images("test/confusion_matrix")[-1].step == events.Scalars("test/acc")[-1].step
    val_steps = [e.step for e in events.Images("val/confusion_matrix")]
    assert val_steps == [e.step for e in events.Images("val/misclassified")]
    assert val_steps == _improved_steps(events)


def test_confusion_matrix_counts_the_models_test_predictions(evaluated):
    model, datamodule = evaluated.model.eval(), evaluated.datamodule
    preds, targets = [], []
    with torch.no_grad():
        for x, y in datamodule.test_dataloader():
            x = datamodule.transform_batch(x, train=False)  # the in-memory path's uint8 -> normalised
            preds.append(model(x).argmax(dim=1))
            targets.append(y)
    preds, targets = torch.cat(preds), torch.cat(targets)
    assert len(targets) == 80
    expected = torch.zeros(10, 10, dtype=torch.long)
    for t, p in zip(targets.tolist(), preds.tolist(), strict=True):
        expected[t, p] += 1

    assert torch.equal(_callback(evaluated).confusion_matrices["test"], expected)
    metrics = evaluated.trainer.callback_metrics
    assert metrics["test/acc"].item() == pytest.approx(expected.diag().sum().item() / 80)
    for key, correct, count in zip(
        _metric_keys(model.class_names), expected.diag().tolist(), expected.sum(1).tolist(), strict=True
    ):
        assert metrics[f"test/acc_{key}"].item() == pytest.approx(correct / count)
    assert "test/acc_T-shirt_top" in metrics and "test/acc_Ankle_boot" in metrics
    for key, recall in zip(
        _metric_keys(model.class_names), per_class_scores(expected)["recall"], strict=True
    ):
        assert metrics[f"test/recall_{key}"].item() == pytest.approx(recall.item())
        assert {f"test/precision_{key}", f"test/f1_{key}"} <= set(metrics)


def test_test_prints_per_class_accuracy(evaluated):
    confmat = _callback(evaluated).confusion_matrices["test"]
    lines = evaluated.printed.splitlines()
    start = lines.index("Per-class test accuracy:")
    assert lines[start + 1].split() == ["class", "accuracy", "precision", "recall", "f1", "count"]
    rows = lines[start + 2 : start + 13]
    predicted = confmat.sum(0).tolist()
    for row, name, correct, count, n_pred in zip(
        rows[:10],
        evaluated.model.class_names,
        confmat.diag().tolist(),
        confmat.sum(1).tolist(),
        predicted,
        strict=True,
    ):
        assert row.startswith(name)
        acc, precision, recall, f1, n = row[len(name) :].split()
        assert acc == recall == f"{correct / count:.4f}" and n == str(count)
        assert precision == (f"{correct / n_pred:.4f}" if n_pred else "0.0000")
        p, r = float(precision), float(recall)
        assert float(f1) == pytest.approx(2 * p * r / (p + r) if p + r else 0.0, abs=1e-4)
    macro = rows[10].split()
    assert macro[:2] == ["macro", "avg"] and macro[-1] == str(int(confmat.sum()))
    # The macro average of the recalls is the logged balanced accuracy.
    assert float(macro[2]) == pytest.approx(
        evaluated.trainer.callback_metrics["test/acc_macro"].item(), abs=1e-4
    )


def test_val_figures_only_on_improvement_and_never_in_the_sanity_check(fast_args, tmp_path):
    # With a learning rate of 0 (and no batch norm), every epoch scores the same: only the first is best.
    (tmp_path / "frozen.yaml").write_text(
        "model:\n  init_args:\n    backbone: src.models.components.LeNet\n"
        "    optimizer:\n      init_args:\n        lr: 0.0\n"
    )
    args = ["fit", *fast_args, "--config", str(tmp_path / "frozen.yaml")]
    args += ["--trainer.max_epochs=3", "--trainer.limit_train_batches=2", "--test_after_fit=false"]
    with contextlib.redirect_stdout(io.StringIO()):
        cli = cli_main(args)
    events = _events(cli)
    accs = [e.value for e in events.Scalars("val/acc")]
    assert len(accs) == 3 and len(set(accs)) == 1
    first = events.Scalars("val/acc")[0].step
    assert first > 0  # after training started, not the sanity check
    assert [e.step for e in events.Images("val/confusion_matrix")] == [first]
    assert [e.step for e in events.Images("val/misclassified")] == [first]
    assert not any(tag.startswith("test/") for tag in events.Tags()["images"])


def test_metric_keys_are_sanitised_and_unique():
    assert _metric_keys(["T-shirt/top", "Ankle boot", "a b", "a/b", ""]) == [
        "T-shirt_top",
        "Ankle_boot",
        "a_b",
        "a_b_3",
        "4",
    ]


def test_per_class_table_and_empty_grid():
    confmat = torch.tensor([[3, 1], [0, 0]])
    table = per_class_table(["cat", "dog"], confmat).splitlines()
    assert table[2].split() == ["cat", "0.7500", "1.0000", "0.7500", "0.8571", "4"]
    assert table[3].split() == ["dog", "n/a", "0.0000", "0.0000", "0.0000", "0"]
    assert table[4].split() == ["macro", "avg", "0.7500", "1.0000", "0.7500", "0.8571", "4"]  # cat only
    figure = misclassified_figure([], ["cat", "dog"])
    assert figure.texts[0].get_text() == "no misclassified images"


def test_val_figures_are_drawn_at_most_once_a_minute_and_the_last_best_when_training_ends(monkeypatch):
    callback = EvaluationFigures(min_interval=60)
    drawn = []
    monkeypatch.setattr(callback, "_log_figures", lambda *args: drawn.append((args[2], args[5])))
    # Accuracies 0.5, 0.75 (better), 0.5 (worse), 1.0 (better), then 1.0 is not better.
    matrices = iter(torch.tensor([[c, 4 - c], [0, 4]]) for c in (0, 2, 0, 4, 4))
    monkeypatch.setattr(callback, "_compute", lambda: next(matrices))
    clock = SimpleNamespace(now=0.0)
    monkeypatch.setattr("src.callbacks.evaluation.time.monotonic", lambda: clock.now)
    loop = SimpleNamespace(_batches_that_stepped=0)
    trainer = SimpleNamespace(sanity_checking=False, fit_loop=SimpleNamespace(epoch_loop=loop))
    for step, now in ((10, 1000.0), (20, 1010.0), (30, 1020.0), (40, 1030.0), (50, 1100.0)):
        loop._batches_that_stepped, clock.now = step, now
        callback.on_validation_epoch_end(trainer, None)
    assert drawn == [("val", 10)]  # step 20 and 40 came within a minute; 40 replaced 20
    callback.on_train_end(trainer, None)
    assert drawn == [("val", 10), ("val", 40)] and callback.best_val_acc == 1.0
    callback.on_train_end(trainer, None)
    assert len(drawn) == 2  # nothing left to draw
