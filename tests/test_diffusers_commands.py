"""`guide` and `probe` end to end on a saved class-conditional random-init diffusers UNet.

The numbers mean nothing here (an untrained network); the tests check the pipeline: the model loads from a
``save_pretrained`` folder, arms run on common random numbers, NFE are counted and the outputs are written.
"""

import json

import pytest
import torch
from critdiff.experiments.context import Context

diffusers = pytest.importorskip("diffusers")

from critdiff.cli import main  # noqa: E402
from critdiff.nets.classifier import ClassifierTrainConfig  # noqa: E402
from critdiff.experiments.train import run_train_classifier  # noqa: E402


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("diffusers")
    torch.manual_seed(1)
    unet = diffusers.UNet2DModel(
        sample_size=8, in_channels=1, out_channels=1, block_out_channels=(8, 16), layers_per_block=1,
        norm_num_groups=4, down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"),
        num_class_embeds=11)
    pipe = diffusers.DDPMPipeline(unet=unet.eval(), scheduler=diffusers.DDPMScheduler(num_train_timesteps=1000))
    pipe.save_pretrained(root / "pipe")
    run_train_classifier(ClassifierTrainConfig(data="digits:size=8", steps=3, batch=32, width=8), Context(root / "clf", progress=False))
    yield root
    torch.set_num_threads(n)


def test_guide_runs_arms_on_a_class_conditional_diffusers_unet(saved, capsys):
    out = saved / "guide"
    rc = main(["guide", "--model", f"diffusers:{saved / 'pipe'}", "--data", "digits:size=8,n=60",
               "--classifier", str(saved / "clf"), "--arms", "none,cond,constant,tc,random", "--n", "4", "--batch", "4",
               "--steps", "4", "--tc-logsnr", "0.0", "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["tc"]["logsnr"] == 0.0
    rows = {r["arm"]: r for r in summary["table"]}
    assert {"none", "cond", "constant", "tc", "random"} <= set(rows)
    # unconditional and conditional arms spend one evaluation per step, constant guidance two
    assert rows["none"]["NFE"] == 4 and rows["cond"]["NFE"] == 4 and rows["constant"]["NFE"] == 8
    assert (out / "trials.jsonl").stat().st_size > 0


def test_probe_runs_on_a_diffusers_unet_and_reports_nfe(saved, capsys):
    out = saved / "probe"
    rc = main(["probe", "--model", f"diffusers:{saved / 'pipe'}", "--n", "4", "--times", "3", "--probes", "2",
               "--steps", "6", "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    rec = json.loads((out / "result.json").read_text())["result"]
    nfe = rec["nfe"]
    assert nfe["sampler_per_sample"] == 6  # ddim, one evaluation per step
    assert nfe["trajectory_probes_per_sample"] > 0 and nfe["susceptibility_per_sample"] > 0
    assert nfe["linear_response_per_member"] > 0
    assert nfe["total_per_sample"] == (nfe["sampler_per_sample"] + nfe["trajectory_probes_per_sample"]
                                       + nfe["susceptibility_per_sample"] + nfe["linear_response_per_member"])
    assert set(rec["signals"]) >= {"stiffness", "chi", "linear_growth", "linear_stiffness"} and "combined" in rec


def test_guide_runs_on_a_diffusers_unet_without_data_and_reports_nfe_and_diversity(saved, capsys):
    """No --data: the labels are the model's own (11 class rows, the last the null class: 10 classes), t_c is given
    (or estimated from the model alone), and the run reports what needs no classifier: NFE and pixel diversity."""
    out = saved / "guide-nodata"
    rc = main(["guide", "--model", f"diffusers:{saved / 'pipe'}", "--arms", "none,constant", "--n", "4", "--batch",
               "4", "--steps", "4", "--tc-logsnr", "0.0", "--out", str(out)])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "none  NFE 4.0  pixel diversity -  (n 4)" in captured.out and "constant  NFE 8.0" in captured.out
    trials = [json.loads(line) for line in (out / "trials.jsonl").read_text().splitlines()]
    none = next(t for t in trials if t.get("type") == "trial" and t["arm"] == "none")
    assert none["label"] == [0, 1, 2, 3]
    # one sample per class: no within-class pair, so no diversity (printed as '-')
    rc = main(["guide", "--model", f"diffusers:{saved / 'pipe'}", "--arms", "none", "--n", "2", "--steps", "4",
               "--tc-from", "speciation", "--out", str(saved / "guide-spec")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err == "critdiff: error: data: --tc-from speciation needs --data SPEC (the data covariance)"
