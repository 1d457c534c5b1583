"""The training loader (src/data/loaders.py) resumed by Lightning, in this process: after a resume from a
checkpoint in the middle or at the end of an epoch, with or without worker processes, training goes on
with the batches (and the random numbers drawn while loading them) of a run never interrupted."""

from __future__ import annotations

import pytest
import torch
from lightning import Callback, LightningModule, Trainer, seed_everything
from lightning.pytorch.callbacks import ModelCheckpoint
from torch.utils.data import Dataset
from torchdata.stateful_dataloader import StatefulDataLoader

from src.callbacks.fault_tolerance import RandomStateCheckpoint
from src.data.loaders import training_loader


class RandomItems(Dataset):
    """Item `i` is `[i, a random number]`, drawn where the item is loaded, as a random augmentation is."""

    def __len__(self) -> int:
        return 20

    def __getitem__(self, index: int) -> torch.Tensor:
        return torch.tensor([float(index), torch.rand(()).item()])


class Recorder(LightningModule):
    """Trains on `RandomItems` in batches of 4 (5 an epoch) and keeps every batch it trained on."""

    def __init__(self, **loader_args) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(2))
        self.loader_args = loader_args
        self.batches: list[list[list[float]]] = []

    def train_dataloader(self):
        return training_loader(RandomItems(), batch_size=4, seed=3, **self.loader_args)

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        self.batches.append(batch.tolist())
        return (self.weight * batch).sum()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


class Crash(Exception):
    pass


class CrashAtStep(Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer: Trainer, *args) -> None:
        if trainer.global_step == self.step:
            raise Crash


def fit(tmp_path, loader_args: dict, every: int, crash: int | None = None, resume: bool = False) -> Recorder:
    """3 epochs of 5 steps, `last.ckpt` every `every` steps; crashed at step `crash`, or resumed."""
    seed_everything(0)
    model = Recorder(**loader_args)
    callbacks = [
        ModelCheckpoint(dirpath=tmp_path, every_n_train_steps=every, save_top_k=0, save_last=True),
        RandomStateCheckpoint(),
        *([CrashAtStep(crash)] if crash else []),
    ]
    trainer = Trainer(
        max_epochs=3,
        accelerator="cpu",
        devices=1,
        callbacks=callbacks,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(model, ckpt_path=tmp_path / "last.ckpt" if resume else None)
    return model


WORKERS = {
    "main process": {},
    "persistent workers": {"num_workers": 2, "persistent_workers": True},
    "workers": {"num_workers": 2, "persistent_workers": False},
}


@pytest.mark.parametrize("loader_args", WORKERS.values(), ids=WORKERS.keys())
@pytest.mark.parametrize(
    "every, saved", [(3, 6), (5, 5)], ids=["checkpoint mid-epoch", "checkpoint at the end of an epoch"]
)
def test_resumed_run_trains_on_the_batches_of_a_run_never_interrupted(tmp_path, loader_args, every, saved):
    """Crashed at step 7, resumed from the step-`saved` checkpoint: the remaining batches, item for item
    and random number for random number. (A plain `StatefulDataLoader` resumed at the end of an epoch
    trains on no batch at all after it, and draws the next epoch's order or worker seeds anew.)"""
    whole = fit(tmp_path / "whole", loader_args, every)
    with pytest.raises(Crash):
        fit(tmp_path / "run", loader_args, every, crash=7)
    assert torch.load(tmp_path / "run" / "last.ckpt", weights_only=True)["global_step"] == saved
    resumed = fit(tmp_path / "run", loader_args, every, resume=True)
    assert len(resumed.batches) == 15 - saved
    assert resumed.batches == whole.batches[saved:]


def test_resumed_with_other_workers_trains_on_the_same_items(tmp_path):
    """Crashed with 2 worker processes, resumed with none: torchdata's state needs the same workers, so
    the loader skips the batches done; the same items follow, only their random numbers differ."""
    whole = fit(tmp_path / "whole", WORKERS["workers"], every=3)
    with pytest.raises(Crash):
        fit(tmp_path / "run", WORKERS["workers"], every=3, crash=7)
    resumed = fit(tmp_path / "run", WORKERS["main process"], every=3, resume=True)
    items = [[[item[0] for item in batch] for batch in run.batches] for run in (whole, resumed)]
    assert items[1] == items[0][6:]


@pytest.mark.parametrize("num_workers", [0, 2])
def test_torchdata_state_has_the_key_the_loader_sets(num_workers):
    """`TrainingDataLoader` marks a saved position from an earlier epoch as finished, by torchdata's key
    `_iterator_finished` (private: pinned here)."""
    loader = StatefulDataLoader(list(range(8)), batch_size=4, num_workers=num_workers)
    iterator = iter(loader)
    next(iterator)
    assert loader.state_dict()["_iterator_finished"] is False


def test_a_position_saved_by_the_template_v0_1_is_skipped_to():
    """The loader of the template's v0.1 saved `{"epoch", "batches"}` and drew the same order: a run
    resumed from such a checkpoint goes on with the next batch."""
    whole = [batch.tolist() for batch in training_loader(list(range(12)), batch_size=4, seed=5)]
    resumed = training_loader(list(range(12)), batch_size=4, seed=5)
    resumed.load_state_dict({"epoch": 0, "batches": 1})
    assert [batch.tolist() for batch in resumed] == whole[1:]
