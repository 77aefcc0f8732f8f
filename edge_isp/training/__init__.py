"""Training: recipes, losses, synthetic and dataset pairs, a resumable trainer, evaluation.

    >>> from edge_isp.training import TrainConfig, train
    >>> result = train(TrainConfig(model="microisp", steps=2000, out="runs/micro"))

Importing this package imports torch (training needs it); the CLI imports it lazily.
"""

from edge_isp.training.losses import LOSS_NAMES, CombinedLoss, VGGPerceptualLoss, build_loss, colour_loss
from edge_isp.training.recipes import RECIPES, Recipe, Stage, get_recipe, list_recipes
from edge_isp.training.checkpoint import load_checkpoint_model
from edge_isp.training.trainer import TrainConfig, Trainer, TrainResult, train
from edge_isp.training.validation import validate

__all__ = [
    "LOSS_NAMES", "RECIPES", "CombinedLoss", "Recipe", "Stage", "TrainConfig", "TrainResult", "Trainer",
    "VGGPerceptualLoss", "build_loss", "colour_loss", "get_recipe", "list_recipes",
    "load_checkpoint_model", "train", "validate",
]
