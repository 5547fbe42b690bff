"""Tests of critdiff.data (DESIGN.md section 6) against independent computations.

Oracles: scikit-learn / scikit-image arrays read directly, a brute-force bilinear
interpolation loop, an exhaustive crop search, numpy FFT spectra against the closed-form
power spectra, and IDX / PNG / npy files written here byte by byte.
"""

from __future__ import annotations

import gzip
import math
import struct

import numpy as np
import pytest
import torch

from critdiff.data import DATASETS, describe, load
from critdiff.data.transforms import subset_indices

BUILTIN_SPECS = [
    "digits:n=60",
    "digits:size=16,n=30",
    "textures:per_class=5",
    "textures:per_class=4,scale=4,size=16",
    "twopoint:n=10,size=4,channels=2",
    "stripes:n=10,orientation=both",
    "grf:n=6,size=16",
    "grf:n=6,size=16,spectrum=ring,channels=3",
]


# --------------------------------------------------------------------------- contract
@pytest.mark.parametrize("spec", BUILTIN_SPECS)
def test_contract_shapes_dtypes_determinism(spec):
    x, y = load(spec)
    assert x.dtype == torch.float32 and x.ndim == 4 and x.is_contiguous()
    assert bool(torch.isfinite(x).all())
    if not spec.startswith("grf"):
        assert float(x.min()) >= -1.0 and float(x.max()) <= 1.0
    if y is not None:
        assert y.dtype == torch.int64 and y.shape == (x.shape[0],) and int(y.min()) >= 0
    x2, y2 = load(spec, seed=0)
    assert torch.equal(x, x2) and (y is None or torch.equal(y, y2))
    x3, _ = load(spec + ",seed=0")
    assert torch.equal(x, x3)
    if not spec.startswith("twopoint"):  # twopoint with a new seed may only permute
        x4, _ = load(spec, seed=1)
        assert not torch.equal(x, x4)
    info = describe(spec)
    assert info["shape"] == tuple(x.shape[1:]) and info["n"] == x.shape[0]


def test_seed_argument_wins_over_spec():
    a, _ = load("grf:n=2,size=8,seed=5", seed=3)
    b, _ = load("grf:n=2,size=8", seed=3)
    c, _ = load("grf:n=2,size=8,seed=5")
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_datasets_registry_lists_every_loader():
    for name in DATASETS:
        assert isinstance(DATASETS[name], str) and "\n" not in DATASETS[name]
    assert set(DATASETS) == {"digits", "mnist", "textures", "twopoint", "stripes", "grf", "idx", "folder", "npy"}


# --------------------------------------------------------------------------- digits
def _bilinear_oracle(img: np.ndarray, out: int) -> np.ndarray:
    """Brute-force bilinear resize, half-pixel centres, edge clamping (align_corners=False)."""
    n_in = img.shape[0]
    res = np.zeros((out, out))

    def taps(i):
        s = max((i + 0.5) * n_in / out - 0.5, 0.0)
        i0 = int(math.floor(s))
        i1 = min(i0 + 1, n_in - 1)
        return i0, i1, s - i0

    for r in range(out):
        r0, r1, fr = taps(r)
        for c in range(out):
            c0, c1, fc = taps(c)
            res[r, c] = ((1 - fr) * ((1 - fc) * img[r0, c0] + fc * img[r0, c1])
                         + fr * ((1 - fc) * img[r1, c0] + fc * img[r1, c1]))
    return res


def test_digits_values_labels_and_upsampling():
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x, y = load("digits")
    ref = bunch.images / 8.0 - 1.0
    np.testing.assert_allclose(x[:, 0].numpy(), ref, atol=1e-6)
    assert torch.equal(y, torch.as_tensor(bunch.target))
    xs, ys = load("digits:size=13,n=20")
    # find each subset image's source row by nearest upsampled image, then check the
    # interpolation against the brute-force loop
    full = torch.as_tensor(ref, dtype=torch.float32)[:, None]
    up = torch.nn.functional.interpolate(full, size=13, mode="bilinear", align_corners=False)
    for i in range(3):
        j = int(torch.argmin(((up - xs[i : i + 1]) ** 2).sum(dim=(1, 2, 3))))
        assert int(ys[i]) == int(bunch.target[j])
        np.testing.assert_allclose(xs[i, 0].numpy(), _bilinear_oracle(ref[j], 13), atol=1e-5)


def test_digits_subset_is_stratified_and_classes_relabel():
    _, y_all = load("digits")
    _, y = load("digits:n=200")
    expect = torch.bincount(y_all).double() * 200 / len(y_all)  # proportional allocation
    assert float((torch.bincount(y).double() - expect).abs().max()) < 1.0
    x, y = load("digits:classes=7+3")
    x_full, y_full = load("digits")
    assert torch.equal(x[y == 0], x_full[y_full == 7]) and torch.equal(x[y == 1], x_full[y_full == 3])


def test_subset_indices_proportional_for_unbalanced_labels():
    labels = torch.tensor([0] * 80 + [1] * 20)
    idx = subset_indices(100, 10, labels, torch.Generator().manual_seed(0))
    assert torch.bincount(labels[idx]).tolist() == [8, 2]
    assert torch.equal(idx, torch.sort(idx).values) and len(set(idx.tolist())) == 10


# --------------------------------------------------------------------------- textures
def _texture_oracle(name: str, scale: int) -> np.ndarray:
    import skimage.data

    t = getattr(skimage.data, name)().astype(np.float64)
    s = t.shape[0] // scale
    t = t[: s * scale, : s * scale].reshape(s, scale, s, scale).mean(axis=(1, 3))
    return 2 * (t - t.min()) / (t.max() - t.min()) - 1


def test_texture_crops_are_windows_of_the_normalised_texture():
    size, scale = 8, 8
    x, y = load(f"textures:per_class=3,size={size},scale={scale}")
    assert y.tolist() == [0, 1, 2] * 3
    for name_i, name in enumerate(["brick", "grass", "gravel"]):
        tex = torch.as_tensor(_texture_oracle(name, scale))
        windows = tex.unfold(0, size, 1).unfold(1, size, 1)  # [P, P, size, size]
        assert float(tex.min()) == -1.0 and float(tex.max()) == 1.0
        for crop in x[y == name_i, 0].double():
            err = ((windows - crop) ** 2).amax(dim=(2, 3))
            assert float(err.min()) < 1e-10


def test_textures_n_is_the_total_and_per_class_the_count_per_texture():
    x, y = load("textures:size=8,per_class=4,scale=8")
    x_n, y_n = load("textures:size=8,n=12,scale=8")
    assert x.shape[0] == 12 and torch.equal(x, x_n) and torch.equal(y, y_n)  # n = 3 per_class: the same images
    x7, y7 = load("textures:size=8,n=7,scale=8")
    assert x7.shape[0] == 7 and y7.tolist() == [0, 1, 2, 0, 1, 2, 0]
    assert load("textures:size=8,scale=8")[0].shape[0] == 900  # default per_class=300
    digits, _ = load("digits:n=12")
    assert digits.shape[0] == 12  # n is a total for every data set
    with pytest.raises(ValueError, match="per_class"):
        load("textures:n=6,per_class=2")


def test_texture_size_too_large_for_scale_is_an_error():
    with pytest.raises(ValueError, match=r"^data: option 'size'"):
        load("textures:size=100,scale=8")


# --------------------------------------------------------------------------- synthetic
def test_twopoint_values():
    x, y = load("twopoint:n=11,size=3,channels=2,amp=0.5")
    assert x.shape == (11, 2, 3, 3)
    expect = (y.float() * 2 - 1) * 0.5
    assert torch.equal(x, expect[:, None, None, None].expand_as(x))
    assert sorted(torch.bincount(y).tolist()) == [5, 6]


@pytest.mark.parametrize("size,wavelength", [(32, 8), (24, 3), (33, 5.5)])
def test_stripes_dominant_mode_is_two_pi_over_wavelength(size, wavelength):
    x, y = load(f"stripes:size={size},wavelength={wavelength},n=12,orientation=both,amp=0.8")
    assert float(x.abs().max()) <= 0.8 + 1e-6
    k = np.fft.fftfreq(size) * 2 * np.pi
    for img, lab in zip(x[:, 0].double().numpy(), y.tolist()):
        power = np.abs(np.fft.fft2(img)) ** 2
        ky, kx = np.unravel_index(np.argmax(power), power.shape)
        along, across = (kx, ky) if lab == 0 else (ky, kx)
        assert across == 0
        assert abs(abs(k[along]) - 2 * np.pi / wavelength) <= np.pi / size + 1e-12
        if size % wavelength == 0:  # on-grid: all the power in the +-k pair
            assert power[ky, kx] * 2 / power.sum() > 1 - 1e-9
        # constant along the stripes
        assert np.ptp(img, axis=0 if lab == 0 else 1).max() < 1e-6


def test_stripes_phase_is_uniform():
    x, _ = load("stripes:size=16,wavelength=16,n=2000")
    # phi = angle of the first Fourier coefficient along x; uniform => mean resultant length ~ 1/sqrt(n)
    phi = np.angle(np.fft.fft(x[:, 0, 0].double().numpy(), axis=-1)[:, 1])
    assert abs(np.mean(np.exp(1j * phi))) < 4 / math.sqrt(2000)


def _radial_power(x: torch.Tensor, nbins: int):
    """Radially averaged E|x_hat(k)|^2 / size^2 in ``nbins`` equal |k| bins up to pi."""
    size = x.shape[-1]
    p = (np.abs(np.fft.fft2(x.double().numpy())) ** 2).mean(axis=(0, 1)) / size ** 2
    k = np.fft.fftfreq(size) * 2 * np.pi
    kabs = np.sqrt(k[:, None] ** 2 + k[None, :] ** 2)
    edges = np.linspace(0, np.pi, nbins + 1)
    which = np.digitize(kabs, edges) - 1
    centers, means, kmeans = [], [], []
    for b in range(nbins):
        m = which == b
        if m.any():
            centers.append(0.5 * (edges[b] + edges[b + 1]))
            means.append(p[m].mean())
            kmeans.append(kabs[m])
    return np.array(centers), np.array(means), kmeans, kabs, p


def test_grf_powerlaw_spectrum_and_std():
    alpha, k0, std, size = 2.5, 0.3, 0.4, 32
    x, y = load(f"grf:spectrum=powerlaw,alpha={alpha},k0={k0},std={std},size={size},n=400")
    assert y is None
    k = np.fft.fftfreq(size) * 2 * np.pi
    kabs = np.sqrt(k[:, None] ** 2 + k[None, :] ** 2)
    law = (k0 ** 2 + kabs ** 2) ** (-alpha / 2)
    law *= std ** 2 / law.mean()
    p = (np.abs(np.fft.fft2(x[:, 0].double().numpy())) ** 2).mean(axis=0) / size ** 2
    # radially averaged ratio empirical / prescribed in 8 bins: within sampling error
    edges = np.linspace(0, np.pi * math.sqrt(2) + 1e-9, 9)
    which = np.digitize(kabs, edges) - 1
    for b in range(8):
        m = which == b
        if m.sum() >= 4:
            ratio = p[m].sum() / law[m].sum()
            assert abs(ratio - 1) < 0.06, (b, ratio)
    assert abs(float(x.std()) - std) < 0.02


def test_grf_ring_peak_at_k0_and_not_clipped():
    k0, w, size = 1.2, 0.15, 48
    x, _ = load(f"grf:spectrum=ring,k0={k0},w={w},size={size},n=60,std=0.6")
    assert float(x.abs().max()) > 1.0  # Gaussian values, not clipped
    nbins = 24
    centers, means, _, _, _ = _radial_power(x[:, :1], nbins)
    peak = centers[np.argmax(means)]
    assert abs(peak - k0) <= np.pi / nbins
    # the shape follows exp(-(k - k0)^2 / 2 w^2) near the peak (ratios at +-w)
    k = np.fft.fftfreq(size) * 2 * np.pi
    kabs = np.sqrt(k[:, None] ** 2 + k[None, :] ** 2)
    p = (np.abs(np.fft.fft2(x[:, 0].double().numpy())) ** 2).mean(axis=0)
    inner = np.abs(kabs - k0) < 0.3 * w
    at_w = np.abs(np.abs(kabs - k0) - w) < 0.3 * w
    ratio = p[at_w].mean() / p[inner].mean()
    expect = np.exp(-0.5) / np.exp(-(np.abs(kabs[inner] - k0) ** 2) / (2 * w ** 2)).mean()
    assert abs(ratio / expect - 1) < 0.15


def test_grf_wrong_spectrum_option_is_an_error():
    with pytest.raises(ValueError, match=r"^data: option 'w' of 'grf' does not apply"):
        load("grf:spectrum=powerlaw,w=0.1")
    with pytest.raises(ValueError, match=r"^data: option 'alpha'"):
        load("grf:spectrum=ring,alpha=2")


# --------------------------------------------------------------------------- idx files
def _write_idx(path, arr: np.ndarray, code: int, gz: bool, truncate: int = 0):
    header = bytes([0, 0, code, arr.ndim]) + b"".join(struct.pack(">I", d) for d in arr.shape)
    fmt = {0x08: ">u1", 0x0B: ">i2", 0x0D: ">f4"}[code]
    data = header + arr.astype(fmt).tobytes()
    if truncate:
        data = data[:-truncate]
    with (gzip.open if gz else open)(path, "wb") as fh:
        fh.write(data)


@pytest.mark.parametrize("gz", [False, True])
def test_idx_images_and_sibling_labels(tmp_path, gz):
    rng = np.random.default_rng(1)
    imgs = rng.integers(0, 256, size=(12, 5, 4), dtype=np.uint8)
    labels = np.arange(12) % 3
    ext = ".gz" if gz else ""
    _write_idx(tmp_path / f"train-images-idx3-ubyte{ext}", imgs, 0x08, gz)
    _write_idx(tmp_path / f"train-labels-idx1-ubyte{ext}", labels, 0x08, gz)
    x, y = load(f"idx:{tmp_path}/train-images-idx3-ubyte{ext}")
    assert x.shape == (12, 1, 5, 4)
    np.testing.assert_allclose(x[:, 0].numpy(), imgs / 127.5 - 1, atol=1e-6)
    assert y.tolist() == labels.tolist()
    xs, ys = load(f"idx:{tmp_path}/train-images-idx3-ubyte{ext},n=6,size=8")
    assert xs.shape == (6, 1, 8, 8) and torch.bincount(ys).tolist() == [2, 2, 2]
    x0, y0 = load(f"idx:{tmp_path}/train-images-idx3-ubyte{ext},labels=false")
    assert y0 is None and torch.equal(x0, x)


def test_idx_explicit_labels_and_other_dtypes(tmp_path):
    imgs = np.arange(2 * 3 * 3, dtype=np.int16).reshape(2, 3, 3) - 7
    _write_idx(tmp_path / "a.idx", imgs, 0x0B, gz=True)
    _write_idx(tmp_path / "lab.idx", np.array([4, 1]), 0x08, gz=False)
    x, y = load(f"idx:{tmp_path}/a.idx,labels={tmp_path}/lab.idx")
    assert y.tolist() == [4, 1]
    ref = (imgs - imgs.min()) / (imgs.max() - imgs.min()) * 2 - 1
    np.testing.assert_allclose(x[:, 0].numpy(), ref, atol=1e-6)
    _write_idx(tmp_path / "f.idx", imgs.astype(np.float32) / 3, 0x0D, gz=False)
    xf, yf = load(f"idx:{tmp_path}/f.idx")
    assert yf is None
    np.testing.assert_allclose(xf[:, 0].numpy(), ref, atol=1e-6)


def test_idx_malformed_files(tmp_path):
    imgs = np.zeros((4, 3, 3), dtype=np.uint8)
    _write_idx(tmp_path / "t-images-idx3-ubyte", imgs, 0x08, gz=False, truncate=5)
    with pytest.raises(ValueError, match=r"^data: truncated IDX file"):
        load(f"idx:{tmp_path}/t-images-idx3-ubyte")
    _write_idx(tmp_path / "g-images-idx3-ubyte.gz", imgs, 0x08, gz=True, truncate=1)
    with pytest.raises(ValueError, match=r"^data: truncated IDX file"):
        load(f"idx:{tmp_path}/g-images-idx3-ubyte.gz")
    (tmp_path / "bad").write_bytes(b"\x08\x03\x00\x00" + bytes(40))
    with pytest.raises(ValueError, match=r"^data: bad IDX magic"):
        load(f"idx:{tmp_path}/bad")
    (tmp_path / "broken.gz").write_bytes(b"\x1f\x8b\x08\x00garbage")
    with pytest.raises(ValueError, match=r"^data: cannot read IDX file"):
        load(f"idx:{tmp_path}/broken.gz")
    _write_idx(tmp_path / "r-images-idx3-ubyte", np.zeros((4, 9), np.uint8), 0x08, gz=False)
    with pytest.raises(ValueError, match=r"rank 3"):
        load(f"idx:{tmp_path}/r-images-idx3-ubyte")
    _write_idx(tmp_path / "m-images-idx3-ubyte", imgs, 0x08, gz=False)
    _write_idx(tmp_path / "m-labels-idx1-ubyte", np.zeros(3), 0x08, gz=False)
    with pytest.raises(ValueError, match=r"^data: labels in .* has 3 entries but there are 4 images$"):
        load(f"idx:{tmp_path}/m-images-idx3-ubyte")


# --------------------------------------------------------------------------- folder
def _png(path, arr):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def test_folder_with_class_subfolders(tmp_path):
    rng = np.random.default_rng(0)
    data = {}
    for cls in ["zebra", "ant"]:
        for i in range(3):
            arr = rng.integers(0, 256, size=(6, 5), dtype=np.uint8)
            _png(tmp_path / cls / f"{i}.png", arr)
            data[(cls, i)] = arr
    x, y = load(f"folder:{tmp_path}")
    assert x.shape == (6, 1, 6, 5)
    assert y.tolist() == [0, 0, 0, 1, 1, 1]  # 'ant' < 'zebra'
    np.testing.assert_allclose(x[0, 0].numpy(), data[("ant", 0)] / 127.5 - 1, atol=1e-6)
    np.testing.assert_allclose(x[5, 0].numpy(), data[("zebra", 2)] / 127.5 - 1, atol=1e-6)
    x3, _ = load(f"folder:{tmp_path},gray=false,size=4,n=4")
    assert x3.shape == (4, 3, 4, 4)
    assert torch.allclose(x3[:, 0], x3[:, 1]) and torch.allclose(x3[:, 0], x3[:, 2])


def test_folder_top_level_rgb_and_errors(tmp_path):
    rgb = np.zeros((4, 4, 3), dtype=np.uint8)
    rgb[..., 0] = 255
    _png(tmp_path / "flat" / "a.png", rgb)
    _png(tmp_path / "flat" / "b.png", rgb[..., ::-1].copy())
    x, y = load(f"folder:{tmp_path}/flat")
    assert y is None and x.shape == (2, 3, 4, 4)
    assert x[0, :, 0, 0].tolist() == [1.0, -1.0, -1.0] and x[1, :, 0, 0].tolist() == [-1.0, -1.0, 1.0]
    xg, _ = load(f"folder:{tmp_path}/flat,gray=true")
    assert xg.shape == (2, 1, 4, 4)

    _png(tmp_path / "sizes" / "a.png", np.zeros((4, 4), np.uint8))
    _png(tmp_path / "sizes" / "b.png", np.zeros((5, 4), np.uint8))
    with pytest.raises(ValueError, match=r"^data: images in .* differ in size .*size=K"):
        load(f"folder:{tmp_path}/sizes")
    assert load(f"folder:{tmp_path}/sizes,size=3")[0].shape == (2, 1, 3, 3)

    _png(tmp_path / "mixed" / "a.png", np.zeros((4, 4), np.uint8))
    _png(tmp_path / "mixed" / "c" / "b.png", np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError, match=r"^data: folder .* has images both"):
        load(f"folder:{tmp_path}/mixed")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"^data: no image files"):
        load(f"folder:{tmp_path}/empty")
    (tmp_path / "corrupt").mkdir()
    (tmp_path / "corrupt" / "x.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match=r"^data: cannot read image"):
        load(f"folder:{tmp_path}/corrupt,gray=true")


# --------------------------------------------------------------------------- npy
@pytest.mark.parametrize("sibling", ["x.npy.labels.npy", "x.labels.npy"])
def test_npy_with_labels_sibling(tmp_path, sibling):
    arr = np.random.default_rng(2).normal(size=(10, 2, 3, 3)) * 5 + 3
    np.save(tmp_path / "x.npy", arr)
    np.save(tmp_path / sibling, np.arange(10) % 2)
    x, y = load(f"npy:{tmp_path}/x.npy")
    ref = 2 * (arr - arr.min()) / (arr.max() - arr.min()) - 1
    np.testing.assert_allclose(x.numpy(), ref, atol=1e-6)
    assert y.tolist() == (np.arange(10) % 2).tolist()
    xr, _ = load(f"npy:{tmp_path}/x.npy,scale=none")
    np.testing.assert_allclose(xr.numpy(), arr, rtol=1e-6)


def test_npy_rank3_and_errors(tmp_path):
    np.save(tmp_path / "a.npy", np.arange(2 * 4 * 4, dtype=np.uint8).reshape(2, 4, 4))
    x, y = load(f"npy:{tmp_path}/a.npy")
    assert x.shape == (2, 1, 4, 4) and y is None and float(x.min()) == -1.0 and float(x.max()) == 1.0
    np.save(tmp_path / "b.npy", np.zeros((3, 4)))
    with pytest.raises(ValueError, match=r"^data: array in .* must have rank 3"):
        load(f"npy:{tmp_path}/b.npy")
    np.save(tmp_path / "c.npy", np.zeros((3, 4, 4)))
    np.save(tmp_path / "c.labels.npy", np.zeros(2, dtype=np.int64))
    with pytest.raises(ValueError, match=r"^data: labels in .* has 2 entries but there are 3 images$"):
        load(f"npy:{tmp_path}/c.npy")
    np.save(tmp_path / "f.npy", np.zeros(3))
    with pytest.raises(ValueError, match=r"integer"):
        load(f"npy:{tmp_path}/c.npy,labels={tmp_path}/f.npy")
    (tmp_path / "junk.npy").write_bytes(b"junk")
    with pytest.raises(ValueError, match=r"^data: cannot read .npy file"):
        load(f"npy:{tmp_path}/junk.npy")


# --------------------------------------------------------------------------- spec errors
@pytest.mark.parametrize(
    "spec,pattern",
    [
        ("cifar", r"unknown data set 'cifar'; valid: digits"),
        ("digits:foo=1", r"unknown option\(s\) foo for 'digits'; valid:"),
        ("digits:3", r"'digits' takes 0 positional"),
        ("digits:size=1", r"option 'size' of 'digits' expects an integer in \[2, 16384\]"),
        ("digits:size=abc", r"option 'size' of 'digits' expects an integer"),
        ("digits:classes=3+x", r"option 'classes'"),
        ("digits:classes=10", r"option 'classes' of 'digits' expects distinct ids in 0..9"),
        ("digits:n=5000", r"option 'n' asks for 5000 items"),
        ("stripes:wavelength=1.5", r"option 'wavelength' of 'stripes' expects a number in \[2.0"),
        ("stripes:orientation=z", r"option 'orientation' of 'stripes' expects one of x, y, both"),
        ("twopoint:amp=2", r"option 'amp' of 'twopoint'"),
        ("grf:spectrum=flat", r"option 'spectrum' of 'grf' expects one of powerlaw, ring"),
        ("grf:seed=-1", r"option 'seed'"),
        ("idx:/no/such/file-images-idx3-ubyte", r"file not found for 'idx': /no/such"),
        ("idx", r"'idx' needs a path"),
        ("npy:/no/such.npy", r"file not found for 'npy'"),
        ("folder:/no/such/dir", r"file not found for 'folder'"),
        ("", r"expected a spec"),
    ],
)
def test_bad_specs_raise_one_line_naming_data(spec, pattern):
    with pytest.raises(ValueError) as info:
        load(spec)
    message = str(info.value)
    assert message.startswith("data:") and "\n" not in message
    assert __import__("re").search(pattern, message), message


def test_bad_seed_argument():
    with pytest.raises(ValueError, match=r"^seed: expected an integer in \[0, "):
        load("twopoint", seed=-2)
