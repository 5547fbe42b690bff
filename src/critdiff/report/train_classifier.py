"""Render a :class:`~critdiff.experiments.train.ClassifierResult`: the evaluation classifier's accuracy (held out,
per class) and its settings."""

from __future__ import annotations

from .fmt import num
from .html import Section, table


def render_train_classifier(result, folder=None, key: str = "train-classifier",
                            title: str = "Training of the evaluation classifier") -> Section:
    """A section showing a classifier training run (accuracies as measured on its own held-out split)."""
    cfg = result.config
    rows = [{"setting": k, "value": v} for k, v in (
        ("data", cfg.data), ("training images", result.n_train), ("held-out images", result.n_heldout),
        ("steps", cfg.steps), ("batch", cfg.batch), ("width", cfg.width), ("features", result.features),
        ("held-out accuracy", result.heldout_accuracy), ("training accuracy", result.train_accuracy),
        ("final loss", result.final_loss), ("seconds", result.seconds), ("device", result.device))]
    per_class = [{"class": k, "held-out accuracy": "-" if acc is None else num(acc)}
                 for k, acc in enumerate(result.per_class_accuracy)]
    html = table(rows) + "<p>Held-out accuracy per class:</p>" + table(per_class)
    finding = (f"held-out accuracy {num(result.heldout_accuracy)} on {result.n_heldout} images (training "
               f"{num(result.train_accuracy)}), after {cfg.steps} steps in {num(result.seconds)} s.")
    return Section(key, title, html, question="How well does the evaluation classifier tell the classes apart?",
                   findings=[finding])
