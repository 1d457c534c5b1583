"""The overlay presets of configs/trainer/ (devices, precision, compile, accumulation, determinism,
profiling) compose with a dataset config, and run on the CPU where they can."""

from __future__ import annotations

import warnings

import pytest
import torch
import yaml

from src.lightning_cli import cli_main
from src.models import ImageClassifier
from src.models.components import LeNet
from tests.helpers.cli import REPO

PRESETS = REPO / "configs" / "trainer"
#: Presets made for GPUs or several machines: checked for composition (ddp also runs as one CPU process,
#: multinode in test_multinode.py).
NOT_ON_CPU = {"gpu", "ddp", "multinode"}


def preset(name: str) -> list[str]:
    """The `--config` arguments of configs/trainer/<name>.yaml."""
    return ["--config", str(PRESETS / f"{name}.yaml")]


def leaves(tree: dict, prefix: str = "") -> dict[str, object]:
    """`{"trainer.precision": "bf16-mixed", ...}`: every value of a nested mapping by its dotted key."""
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            out.update(leaves(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def printed_config(args: list[str], capsys) -> dict:
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["fit", *args, "--print_config"])
    assert exit_info.value.code in (0, None)
    return yaml.safe_load(capsys.readouterr().out)


@pytest.fixture
def restore_torch_flags():
    """Lightning sets torch's determinism and cuDNN flags process-wide; put them back after the test."""
    flags = (
        torch.are_deterministic_algorithms_enabled(),
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
    )
    yield
    torch.use_deterministic_algorithms(flags[0])
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = flags[1:]


def test_every_preset_is_known_to_these_tests():
    names = {path.stem for path in PRESETS.glob("*.yaml")}
    on_cpu = {"cpu", "debug", "bf16", "fp16", "compile", "accumulate", "deterministic", "profiler"}
    on_cpu |= {"ema", "early_stopping"}
    assert names == on_cpu | NOT_ON_CPU


@pytest.mark.parametrize("name", sorted(path.stem for path in PRESETS.glob("*.yaml")))
def test_preset_composes_with_a_dataset_config(name, capsys):
    config = printed_config(["--config", str(REPO / "configs/fashion_mnist.yaml"), *preset(name)], capsys)
    resolved = leaves(config)
    wanted = leaves(yaml.safe_load((PRESETS / f"{name}.yaml").read_text()))
    assert wanted, f"{name}.yaml sets nothing"
    for key, value in wanted.items():
        if key.endswith("+"):  # a list the preset appends to (callbacks+)
            assert [item["class_path"] for item in resolved[key[:-1]]] == [v["class_path"] for v in value]
        else:
            assert resolved[key] == value, key
    # The dataset config is still all there.
    assert config["data"]["class_path"] == "src.data.FashionMNISTDataModule"
    assert config["model"]["init_args"]["backbone"]["class_path"] == "src.models.components.ConvNet"
    # No preset sets a logger: the run gets the default one, named after the first config
    # (tests/test_defaults.py runs that).
    assert config["trainer"]["logger"] is None


def test_presets_compose_with_each_other(capsys):
    args = ["--config", str(REPO / "configs/cifar10_cnn.yaml")]
    args += [*preset("gpu"), *preset("bf16"), *preset("compile"), *preset("accumulate")]
    trainer = printed_config(args, capsys)["trainer"]
    assert (trainer["accelerator"], trainer["devices"]) == ("gpu", 1)
    assert (trainer["precision"], trainer["accumulate_grad_batches"]) == ("bf16-mixed", 4)


def fast_dev_run(fast_args: list[str], *extra: str):
    """Run `fit` with `fast_dev_run` (one batch of each loop) on the CPU; return the CLI."""
    cpu = ["--trainer.accelerator=cpu", "--trainer.devices=1", "--trainer.fast_dev_run=true"]
    return cli_main(["fit", *fast_args, *extra, *cpu])


@pytest.mark.parametrize("name", ["cpu", "debug"])
def test_device_presets_run_on_the_cpu(fast_args, name):
    cli = fast_dev_run(fast_args, *preset(name))
    assert cli.trainer.global_step == 1
    assert cli.trainer.accelerator.__class__.__name__ == "CPUAccelerator"


def test_ddp_preset_runs_as_one_cpu_process(fast_args):
    try:
        cli = fast_dev_run(fast_args, *preset("ddp"), "--trainer.sync_batchnorm=false")  # GPUs only
        assert cli.trainer.strategy.__class__.__name__ == "DDPStrategy"
        assert cli.trainer.world_size == 1
        assert cli.trainer.global_step == 1
    finally:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def test_bf16_preset_trains_in_bfloat16_on_the_cpu(fast_args):
    cli = fast_dev_run(fast_args, *preset("bf16"))
    assert cli.trainer.precision == "bf16-mixed"
    assert cli.trainer.global_step == 1
    with cli.trainer.precision_plugin.forward_context():
        assert cli.model(torch.zeros(2, 1, 28, 28)).dtype == torch.bfloat16
    assert cli.model.backbone.classifier[-1].weight.dtype == torch.float32  # the weights stay float32


def test_fp16_preset_falls_back_to_bf16_on_the_cpu(fast_args):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cli = fast_dev_run(fast_args, *preset("fp16"))
    assert cli.trainer.precision == "bf16-mixed"
    assert any("fp16 is not supported on CPU" in str(w.message) for w in caught)
    assert cli.trainer.global_step == 1


def test_accumulate_preset_steps_the_optimiser_every_4_batches(fast_args):
    limits = ["--trainer.max_epochs=1", "--trainer.limit_train_batches=8", "--trainer.limit_val_batches=1"]
    cli = cli_main(["fit", *fast_args, *preset("accumulate"), *limits, "--test_after_fit=false"])
    assert cli.trainer.accumulate_grad_batches == 4
    assert cli.trainer.fit_loop.epoch_loop.batch_progress.total.completed == 8
    assert cli.trainer.global_step == 2  # optimiser steps


def test_deterministic_preset_turns_on_deterministic_algorithms(fast_args, restore_torch_flags):
    cli = fast_dev_run(fast_args, *preset("deterministic"))
    assert cli.trainer.global_step == 1
    assert torch.are_deterministic_algorithms_enabled()
    assert not torch.backends.cudnn.benchmark


def test_profiler_preset_writes_its_report_into_the_log_folder(fast_args, tmp_path):
    limits = ["--trainer.max_epochs=1", "--trainer.limit_train_batches=2", "--trainer.limit_val_batches=1"]
    cli_main(["fit", *fast_args, *preset("profiler"), *limits, "--test_after_fit=false"])
    report = tmp_path / "fashion_mnist" / "version_0" / "fit-profile.txt"
    text = report.read_text()
    assert "FIT Profiler Report" in text
    assert "run_training_batch" in text


@pytest.fixture
def fresh_compiler(tmp_path, monkeypatch):
    """torch.compile with its kernel cache in tmp_path, and dynamo's caches reset afterwards."""
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


@pytest.mark.filterwarnings("ignore:.*could not find the monitored key")  # no validation here
@pytest.mark.parametrize(
    "backend",
    [
        # Dynamo and AOTAutograd as in a real compile, without generating C++ code: seconds.
        "aot_eager",
        # The preset as shipped (inductor, C++ kernels built with the system compiler): about a minute.
        pytest.param(None, marks=pytest.mark.slow),
    ],
)
def test_compiled_model_trains_and_its_checkpoint_loads_uncompiled(
    fast_args, tmp_path, fresh_compiler, backend
):
    run = ["--model.init_args.backbone=src.models.components.LeNet", "--trainer.max_epochs=1"]
    run += ["--trainer.limit_train_batches=2", "--trainer.limit_val_batches=0", "--test_after_fit=false"]
    if backend:
        run.append(f"--model.init_args.compile={{backend: {backend}}}")
    cli = cli_main(["fit", *fast_args, *preset("compile"), *run])
    assert cli.model.hparams.compile == ({"backend": backend} if backend else True)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] >= 1  # the network did compile
    assert cli.trainer.global_step == 2

    last = tmp_path / "fashion_mnist" / "version_0" / "checkpoints" / "last.ckpt"
    state = torch.load(last, map_location="cpu", weights_only=False)["state_dict"]
    assert not [key for key in state if "_orig_mod" in key]
    # The plain network takes the weights as they are, and computes what the compiled one computes.
    network = LeNet(num_classes=10)
    network.load_state_dict({k.removeprefix("backbone."): v for k, v in state.items() if "backbone." in k})
    loaded = ImageClassifier.load_from_checkpoint(last, map_location="cpu", compile=False).eval()
    x = torch.rand(4, 1, 28, 28)
    with torch.no_grad():
        expected = cli.model.eval()(x)
        assert torch.allclose(loaded(x), expected, atol=1e-5)
        assert torch.allclose(network.eval()(x), expected, atol=1e-5)


def test_ema_and_early_stopping_presets_add_their_callbacks(fast_args):
    limits = ["--trainer.max_epochs=3", "--trainer.limit_train_batches=2", "--trainer.limit_val_batches=1"]
    cli = cli_main(["fit", *fast_args, *preset("ema"), *preset("early_stopping"), *limits])
    names = [type(c).__name__ for c in cli.trainer.callbacks]
    assert "EMA" in names and "EarlyStopping" in names and "Checkpoint" in names  # appended, not replacing
    stopper = next(c for c in cli.trainer.callbacks if type(c).__name__ == "EarlyStopping")
    assert (stopper.monitor, stopper.patience) == ("val/acc", 5)
