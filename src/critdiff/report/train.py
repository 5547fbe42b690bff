"""Render a :class:`~critdiff.experiments.train.TrainResult`: the loss curve, the sample grid, the settings."""

from __future__ import annotations

from pathlib import Path

from .figures import plt, save_figure
from .fmt import num
from .html import Section, table

LOSS_FIGURE = "loss.png"


def loss_figure(result, path) -> Path:
    """The training loss (mean over each logging window) against the step, log scale."""
    steps = [row[0] for row in result.losses]
    values = [row[1] for row in result.losses]
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.plot(steps, values, marker=".")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel(f"loss ({result.config.prediction} target)")
    ax.set_title("training loss")
    return save_figure(fig, path)


def render_train(result, folder=".", key: str = "train", title: str = "Training of the diffusion UNet") -> Section:
    """A section showing a training run; the loss curve is redrawn into ``folder`` (the run's folder)."""
    cfg = result.config
    rows = [{"setting": k, "value": v} for k, v in (
        ("data", cfg.data), ("training images", result.n_train), ("classes", result.n_classes),
        ("parameters", result.n_params), ("steps", result.step), ("final loss", result.final_loss),
        ("images per second", result.images_per_s), ("seconds", result.seconds), ("device", result.device))]
    html = table(rows)
    if result.losses:
        loss_figure(result, Path(folder) / LOSS_FIGURE)
        html += f'<p><img src="{LOSS_FIGURE}">'
        html += ' <img src="samples.png"></p>' if "samples.png" in result.files else "</p>"
    finding = (f"{result.step} steps on {result.n_train} images ({result.n_params} parameters): final loss "
               f"{num(result.final_loss)}, {num(result.seconds)} s.")
    return Section(key, title, html, question="How did the network train, and what does it generate?",
                   findings=[finding])
