"""Text-conditional UNets, class-conditional DiTs and latent (VAE) models through the diffusers adapter.

Every model is a tiny random-init network saved by the test (nothing is downloaded). The oracle for the
denoiser is the network called directly, as the diffusers pipelines call it: ``z = x / sqrt(1 + sigma^2)``,
the model's integer timestep, and ``x0 = x - sigma eps``; for the VAE ``vae.decode(x0 / scaling_factor)``;
for ``--prompt`` the folder's own tokenizer and text encoder. The CLI runs (``sample``, ``probe``,
``guide``) check the commands end to end; their numbers mean nothing for untrained networks.
"""

import json
import logging
import math
import sys

import pytest
import torch

diffusers = pytest.importorskip("diffusers")

from critdiff.cli import main  # noqa: E402
from critdiff.guidance import guided  # noqa: E402
from critdiff.integrations.diffusers import TextConditioning, load_diffusers, save_cond  # noqa: E402
from critdiff.integrations.diffusers import conditioning as C  # noqa: E402
from critdiff.integrations.diffusers.adapter import DiffusersDenoiser, _quiet  # noqa: E402
from oracles import assert_paths_close  # noqa: E402

WIDTH = 12  # cross_attention_dim of the text UNets
T = 1000


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: tiny networks run faster on one thread


def text_unet(channels=1, seed=0):
    torch.manual_seed(seed)
    return diffusers.UNet2DConditionModel(
        sample_size=8, in_channels=channels, out_channels=channels, block_out_channels=(8, 16), layers_per_block=1,
        norm_num_groups=4, down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=WIDTH, attention_head_dim=4).eval()


def dit(seed=0, classes=10):
    torch.manual_seed(seed)
    return diffusers.DiTTransformer2DModel(
        num_attention_heads=2, attention_head_dim=4, in_channels=1, out_channels=2, num_layers=1, sample_size=8,
        patch_size=2, num_embeds_ada_norm=classes).eval()


def vae(seed=0, channels=3, latent=4):
    torch.manual_seed(seed)
    return diffusers.AutoencoderKL(
        in_channels=channels, out_channels=channels, down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"), block_out_channels=(8, 8), layers_per_block=1,
        latent_channels=latent, norm_num_groups=4, sample_size=16).eval()


def text_states(seed=5, prompts=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(prompts, 5, WIDTH, generator=g), torch.randn(1, 5, WIDTH, generator=g)


def save_bare(folder, net, scheduler, **kw):
    net.save_pretrained(folder, **kw)
    scheduler.save_pretrained(folder)
    return folder


def save_pipeline(folder, class_name, **components):
    """A diffusers pipeline folder: ``model_index.json`` naming each component's class and one subfolder each."""
    index = {"_class_name": class_name, "_diffusers_version": diffusers.__version__}
    for name, obj in components.items():
        obj.save_pretrained(folder / name)
        index[name] = ["diffusers", type(obj).__name__]
    for name in ("text_encoder", "tokenizer", "safety_checker", "feature_extractor"):
        index[name] = [None, None]
    (folder / "model_index.json").write_text(json.dumps(index))
    return folder


def tiny_clip(folder):
    """A CLIP tokenizer (letters only, no merges) and a 1-layer CLIP text encoder, saved locally."""
    transformers = pytest.importorskip("transformers")
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    vocab = {w: i for i, w in enumerate(["<|startoftext|>", "<|endoftext|>"] + letters + [c + "</w>" for c in letters])}
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    tok = transformers.CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=8)
    torch.manual_seed(3)
    enc = transformers.CLIPTextModel(transformers.CLIPTextConfig(
        vocab_size=len(vocab), hidden_size=WIDTH, intermediate_size=16, num_hidden_layers=1, num_attention_heads=2,
        max_position_embeddings=8, bos_token_id=0, eos_token_id=1, pad_token_id=1)).eval()
    return tok, enc


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """The folders: a pixel-space text UNet with a --cond file, a pixel-space DiT, a latent text pipeline."""
    root = tmp_path_factory.mktemp("conditional")
    ddim = diffusers.DDIMScheduler(num_train_timesteps=T, clip_sample=False)
    save_bare(root / "text", text_unet(), ddim)
    save_cond(root / "cond.safetensors", *text_states())
    save_bare(root / "dit", dit(), diffusers.DDPMScheduler(num_train_timesteps=T))
    with _quiet(diffusers):
        # a Stable Diffusion folder written component by component, without a text encoder (conditioned by
        # --cond), so that it needs no transformers; test_diffusers_pipelines.py builds full pipelines
        save_pipeline(root / "latent", "StableDiffusionPipeline",
                      unet=text_unet(channels=4, seed=1), vae=vae(), scheduler=ddim)
        gray = diffusers.DiTPipeline(transformer=dit(), vae=vae(channels=1, latent=1), scheduler=ddim)  # 16x16 gray images
        gray.save_pretrained(root / "latent-dit")
    return root


# --- the denoisers against the networks called directly ------------------------------------------
def _direct(net, x, sigma, **kw):
    """x0_hat of an eps network at the integer timestep of ``sigma`` (sigma on the DDPM grid)."""
    sched = diffusers.DDPMScheduler(num_train_timesteps=T)
    abar = sched.alphas_cumprod.double()
    k = int(torch.argmin((torch.sqrt((1 - abar) / abar) - sigma).abs()))
    z = x / math.sqrt(1 + sigma**2)
    out = net(z, torch.tensor([float(k)] * x.shape[0]), **kw).sample
    return x - sigma * out[:, : x.shape[1]]


def _on_grid(k=400):
    abar = diffusers.DDPMScheduler(num_train_timesteps=T).alphas_cumprod.double()
    return float(torch.sqrt((1 - abar[k]) / abar[k]))


def test_text_unet_label_selects_cond_or_null_and_guidance_mixes_them():
    unet = text_unet()
    cond, null = text_states(prompts=2)
    D = DiffusersDenoiser(unet, diffusers.DDPMScheduler(num_train_timesteps=T, clip_sample=False),
                          conditioning=TextConditioning(cond, null))
    s = _on_grid()
    x = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * s
    with torch.no_grad():
        d_u, d_0, d_1 = D(x, s), D(x, s, 0), D(x, s, torch.tensor([1, 0, 1]))
        ref_u = _direct(unet, x, s, encoder_hidden_states=null.expand(3, -1, -1))
        ref_0 = _direct(unet, x, s, encoder_hidden_states=cond[[0, 0, 0]])
        ref_1 = _direct(unet, x, s, encoder_hidden_states=cond[[1, 0, 1]])
        torch.testing.assert_close(d_u, ref_u, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(d_0, ref_0, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(d_1, ref_1, rtol=1e-5, atol=1e-5)
        assert float((d_0 - d_u).abs().max()) > 1e-3  # the conditioning matters
        torch.testing.assert_close(guided(D, 3.0)(x, s, 0), ref_u + 3.0 * (ref_0 - ref_u), rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="^label: expected prompt indices in \\[0, 1\\]"):
        D(x, s, 2)
    with pytest.raises(ValueError, match="^cond: a UNet2DConditionModel needs its text conditioning"):
        DiffusersDenoiser(unet, diffusers.DDPMScheduler())(x, s, 0)  # loads (guide-config), evaluates only with it
    with pytest.raises(ValueError, match="^cond: the encoder states are 7 wide"):
        DiffusersDenoiser(unet, diffusers.DDPMScheduler(), conditioning=TextConditioning(*(t[..., :7] for t in (cond, null))))


def test_dit_null_class_is_num_embeds_ada_norm_and_sigma_half_is_dropped():
    net = dit()
    D = DiffusersDenoiser(net, diffusers.DDPMScheduler(num_train_timesteps=T, clip_sample=False))
    assert D.n_classes == 11 and D.null_class == 10 and D.drop_variance
    s = _on_grid(250)
    x = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(1)) * s
    with torch.no_grad():
        for label, classes in ((None, [10, 10]), (3, [3, 3]), (torch.tensor([0, 9]), [0, 9])):
            ref = _direct(net, x, s, class_labels=torch.tensor(classes))
            torch.testing.assert_close(D(x, s, label), ref, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="^label: expected class indices in \\[0, 10\\]"):
        D(x, s, 11)


def test_latent_pipeline_loads_its_vae_and_decodes(saved):
    D = load_diffusers(saved / "latent", cond=saved / "cond.safetensors")
    assert D.vae is not None and D.sample_shape == (4, 8, 8) and D.config()["latent"] is True
    ref_vae = diffusers.AutoencoderKL.from_pretrained(str(saved / "latent" / "vae"))
    lat = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ref = ref_vae.decode(lat / ref_vae.config.scaling_factor).sample
    out = D.decode(lat)
    assert out.shape == (2, 3, 16, 16)
    # two VAE instances (one loaded by critdiff, one by diffusers): their convolutions may pick other kernels
    # (6e-7 apart on an AVX-512 EPYC), so float32 precision, not bits
    assert_paths_close(out, ref)


# --- conditioning files and prompts ---------------------------------------------------------------
def test_cond_file_round_trip_and_errors(tmp_path):
    cond, null = text_states(prompts=3)
    save_cond(tmp_path / "c.safetensors", cond, null[0])
    tc = C.load_cond(tmp_path / "c.safetensors")
    assert torch.equal(tc.cond, cond) and torch.equal(tc.null, null) and tc.prompts == 3
    from safetensors.torch import save_file

    save_file({C.COND_KEY: cond}, str(tmp_path / "bad.safetensors"))
    with pytest.raises(ValueError, match="^cond: .*lacks null_encoder_hidden_states"):
        C.load_cond(tmp_path / "bad.safetensors")
    with pytest.raises(ValueError, match="^cond: .*is not a file"):
        C.load_cond(tmp_path / "nope.safetensors")
    with pytest.raises(ValueError, match="^cond: the null states"):
        TextConditioning(cond, cond)


def test_prompt_is_encoded_locally_with_the_folders_text_encoder(tmp_path, monkeypatch):
    tok, enc = tiny_clip(tmp_path)
    with _quiet(diffusers):
        pipe = diffusers.StableDiffusionPipeline(
            vae=vae(), text_encoder=enc, tokenizer=tok, unet=text_unet(channels=4), safety_checker=None,
            feature_extractor=None, requires_safety_checker=False,
            scheduler=diffusers.DDIMScheduler(num_train_timesteps=T, clip_sample=False))
        pipe.save_pretrained(tmp_path / "pipe")
    D = load_diffusers(tmp_path / "pipe", prompt="a cat")
    ids = tok(["a cat", ""], padding="max_length", max_length=8, return_tensors="pt").input_ids
    with torch.no_grad():
        ref = enc(ids).last_hidden_state
        # diffusers' own encode_prompt (guidance on: conditional and negative "" states)
        pos, neg = pipe.encode_prompt("a cat", "cpu", 1, True, negative_prompt="")
    # critdiff encodes [prompt, ""] as one batch, diffusers' encode_prompt as two calls of one, and the text
    # encoders are two instances: other batch compositions round the attention differently, so float32 precision
    assert_paths_close(D.conditioning.cond, ref[:1])
    assert_paths_close(D.conditioning.null, ref[1:])
    assert_paths_close(D.conditioning.cond, pos)
    assert_paths_close(D.conditioning.null, neg)
    with pytest.raises(ValueError, match="^prompt: .*has no tokenizer/ component"):
        load_diffusers(save_bare(tmp_path / "bare", text_unet(), diffusers.DDIMScheduler()), prompt="a cat")
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(ValueError) as info:
        load_diffusers(tmp_path / "pipe", prompt="a cat")
    assert str(info.value) == C.TEXT_HINT and "pip install critdiff[text]" in C.TEXT_HINT


# --- loading: .bin and variants -------------------------------------------------------------------
def test_bin_weights_load_without_the_false_fetch_error(tmp_path, caplog, capfd):
    net = dit()
    save_bare(tmp_path / "bin", net, diffusers.DDPMScheduler(num_train_timesteps=T), safe_serialization=False)
    assert (tmp_path / "bin" / "diffusion_pytorch_model.bin").is_file()
    with caplog.at_level(logging.INFO):
        D = load_diffusers(tmp_path / "bin")
    said = caplog.text + "".join(capfd.readouterr())
    assert "An error occurred" not in said and "safetensors" not in said
    for a, b in zip(D.unet.parameters(), net.parameters()):
        assert torch.equal(a, b)


def test_variant_folder_loads_it_and_a_missing_variant_is_named(tmp_path):
    net = dit()
    save_bare(tmp_path / "v", net, diffusers.DDPMScheduler(num_train_timesteps=T), variant="fp16")
    D = load_diffusers(tmp_path / "v")  # the only weights on disk: that variant
    assert D.unet.dtype == torch.float32
    assert all(torch.equal(a, b) for a, b in zip(D.unet.parameters(), net.parameters()))
    with pytest.raises(ValueError, match="^model: cannot load .*no variant 'bf16'.*variants on disk: fp16"):
        load_diffusers(tmp_path / "v", variant="bf16")
    (tmp_path / "v" / "diffusion_pytorch_model.fp16.safetensors").rename(
        tmp_path / "v" / "diffusion_pytorch_model.ema.safetensors")
    net.save_pretrained(tmp_path / "v", variant="fp16")
    with pytest.raises(ValueError, match="^model: cannot load .*no weights .*variants on disk: ema, fp16"):
        load_diffusers(tmp_path / "v")


# --- the commands end to end ------------------------------------------------------------------------
def _run(args, capsys):
    rc = main(args)
    assert rc == 0, capsys.readouterr().err
    capsys.readouterr()


@pytest.mark.parametrize("which", ["text", "dit"])
def test_sample_probe_guide_end_to_end(saved, which, capsys):
    model = ["--model", f"diffusers:{saved / which}"] + (["--cond", str(saved / "cond.safetensors")]
                                                         if which == "text" else [])
    out = saved / f"{which}-out"
    _run(["sample", *model, "--schedule", "model", "--sampler", "ddim", "--steps", "3", "--n", "2", "--label", "0",
          "--out", str(out / "sample")], capsys)
    rec = json.loads((out / "sample" / "result.json").read_text())["result"]
    assert rec["nfe_per_sample"] == 3 and rec["shape"] == [1, 8, 8] and (out / "sample" / "samples.png").is_file()
    _run(["probe", *model, "--n", "3", "--times", "3", "--steps", "4", "--no-chi", "--linear", "0", "--n-boot", "20",
          "--out", str(out / "probe")], capsys)
    assert json.loads((out / "probe" / "result.json").read_text())["result"]["nfe"]["sampler_per_sample"] == 4
    _run(["guide", *model, "--data", "digits:size=8,n=40", "--arms", "none,cond,constant", "--n", "2", "--batch", "2",
          "--steps", "3", "--tc-logsnr", "0.0", "--out", str(out / "guide")], capsys)
    lines = [json.loads(l) for l in (out / "guide" / "trials.jsonl").read_text().splitlines()]
    nfe = {r["arm"]: r["nfe"] for r in lines if r.get("type") == "trial"}
    assert nfe == {"none": [3, 3], "cond": [3, 3], "constant": [6, 6]}  # per sample: w = 0 / 1 once, else twice


def test_sample_on_a_latent_pipeline_decodes_the_figures(saved, capsys):
    out = saved / "latent-out"
    _run(["sample", "--model", f"diffusers:{saved / 'latent'}", "--cond", str(saved / "cond.safetensors"),
          "--schedule", "model", "--sampler", "ddim", "--steps", "2", "--n", "2", "--label", "0", "--out", str(out)],
         capsys)
    rec = json.loads((out / "result.json").read_text())["result"]
    assert rec["shape"] == [4, 8, 8] and rec["model"]["latent"] is True and (out / "samples.png").is_file()
    rc = main(["sample", "--model", f"diffusers:{saved / 'latent'}", "--steps", "2", "--n", "1", "--out", str(out)])
    assert rc == 2 and "cond: a UNet2DConditionModel needs its text conditioning" in capsys.readouterr().err
    # guidance on the latents of a latent DiT; the arms' samples are decoded to the data's 1x16x16 images
    _run(["guide", "--model", f"diffusers:{saved / 'latent-dit'}", "--data", "digits:size=16,n=40", "--arms",
          "none,constant", "--n", "2", "--batch", "2", "--steps", "2", "--tc-logsnr", "0.0", "--out", str(out / "g")],
         capsys)
    trial = json.loads((out / "g" / "trials.jsonl").read_text().splitlines()[-1])
    assert torch.tensor(trial["x"]).shape == (2, 1, 16, 16)
    # guide-config reads only the schedule: no conditioning needed
    _run(["guide-config", "--model", f"diffusers:{saved / 'latent'}", "--tc-logsnr", "0", "--steps", "4", "--json"],
         capsys)
    rc = main(["sample", "--model", "patch", "--data", "digits:size=8", "--cond", "x", "--out", str(out)])
    assert rc == 2 and "cond: --cond conditions a diffusers:DIR UNet2DConditionModel" in capsys.readouterr().err


def test_guide_config_on_a_text_unet_takes_cond(saved, capsys):
    """guide-config measures t_c on a text UNet given its conditioning (--cond; --prompt the same way), and without
    it says which flags give it, in one line."""
    import json

    from critdiff.cli import main

    base = ["guide-config", "--model", f"diffusers:{saved / 'text'}", "--steps", "4", "--json"]
    rc = main(base)
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "--cond" in err and "--prompt" in err and "\n" not in err
    rc = main([*base, "--cond", str(saved / "cond.safetensors")])
    out = capsys.readouterr()
    assert rc == 0, out.err
    cfg = json.loads(out.out)
    assert cfg["tc"]["source"].startswith("probe") and len(cfg["table"]) == 4
    given = main([*base, "--cond", str(saved / "cond.safetensors"), "--tc-logsnr", repr(cfg["tc"]["logsnr"])])
    assert given == 0 and json.loads(capsys.readouterr().out)["table"] == cfg["table"]
