"""Lightning callbacks used by the default trainer."""

from src.callbacks.checkpoint import BestCheckpointToLoggers, Checkpoint, StepCheckpoint
from src.callbacks.ema import EMA
from src.callbacks.evaluation import EvaluationFigures
from src.callbacks.fault_tolerance import FiniteLossCheck, RandomStateCheckpoint, SigtermCheckpoint
from src.callbacks.finetuning import UnfreezeAtEpoch
from src.callbacks.image_grid import SampleImageGrid
from src.callbacks.prediction_writer import PredictionWriter
from src.callbacks.summary_csv import EpochSummaryCSV

__all__ = [
    "BestCheckpointToLoggers",
    "Checkpoint",
    "EMA",
    "EpochSummaryCSV",
    "EvaluationFigures",
    "FiniteLossCheck",
    "PredictionWriter",
    "RandomStateCheckpoint",
    "SampleImageGrid",
    "SigtermCheckpoint",
    "StepCheckpoint",
    "UnfreezeAtEpoch",
]
