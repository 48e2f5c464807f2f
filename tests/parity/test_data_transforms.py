"""torchvision 0.14 parity of deepc's transforms on the same images: exact for ToTensor,
Normalize, crops, flips, padding, grayscale, colour jitter and rotation on PIL images and for
PIL's Resize; Resize on float tensors within 1e-5 of torch's interpolate (antialias on and off).
uint8 [H, W, C] inputs take deepc's PIL paths, float [C, H, W] inputs its tensor paths."""
import ctypes as C

import numpy as np
import torch
import torchvision.transforms as TV
import torchvision.transforms.functional as F
from PIL import Image

from dc import lib, T, TP, to_np, check_close, run_tests, err

raw = lib.raw
VP = C.c_void_p


def fn(name, restype, *args):
    f = getattr(raw, name)
    f.restype, f.argtypes = restype, list(args)
    return f


to_tensor = fn("dc_tf_to_tensor", VP)
normalize = fn("dc_tf_normalize", VP, C.POINTER(C.c_double), C.POINTER(C.c_double), C.c_int)
resize_aa = fn("dc_tf_resize_aa", VP, C.c_int64, C.c_int64, C.c_int)
center_crop = fn("dc_tf_center_crop", VP, C.c_int64, C.c_int64)
hflip = fn("dc_tf_random_hflip", VP, C.c_double)
grayscale = fn("dc_tf_grayscale", VP, C.c_int)
jitter_range = fn("dc_tf_color_jitter_range", VP, C.POINTER(C.c_double), C.POINTER(C.c_double),
                  C.POINTER(C.c_double))
rotation = fn("dc_tf_random_rotation", VP, C.c_double, C.c_double, C.c_double)
compose = fn("dc_tf_compose", VP, C.POINTER(VP), C.c_int)
tf_free = fn("dc_transform_free", None, VP)
apply_ = fn("dc_transform_apply", TP, VP, TP, C.c_uint64)
AA_AUTO, AA_ON, AA_OFF = 0, 1, 2
PAD_CONSTANT, PAD_EDGE, PAD_REFLECT, PAD_SYMMETRIC = range(4)


class CropOpts(C.Structure):
    _fields_ = [("padding", C.c_int), ("padding_ltrb", C.c_int * 4), ("pad_if_needed", C.c_bool),
                ("fill", C.c_double), ("padding_mode", C.c_int)]


class RRCOpts(C.Structure):
    _fields_ = [("scale", C.c_double * 2), ("ratio", C.c_double * 2), ("antialias", C.c_int)]


random_crop = fn("dc_tf_random_crop_opt", VP, C.c_int64, C.c_int64, CropOpts)
rrc = fn("dc_tf_random_resized_crop_opt", VP, C.c_int64, C.c_int64, RRCOpts)

rng = np.random.default_rng(5)


def dvec(*v):
    return (C.c_double * len(v))(*v)


def run(tf, img, seed=1):
    """Applies a deepc transform (freed afterwards) to a numpy image."""
    assert tf, err()
    try:
        out = apply_(tf, T(img), seed)
        assert out, err()
        return to_np(out)
    finally:
        tf_free(tf)


def image(h, w, c=3):
    """A uint8 image with smooth structure and noise (so resampling differences show)."""
    y, x = np.mgrid[0:h, 0:w]
    base = 127 + 100 * np.sin(x / 3.0 + y / 5.0)
    img = np.stack([base + rng.integers(-27, 28, size=(h, w)) for _ in range(c)], -1)
    return np.clip(img, 0, 255).astype(np.uint8)


def pil(img):
    return Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img)


def np_of(p):
    a = np.asarray(p)
    return a[..., None] if a.ndim == 2 else a


def test_to_tensor_normalize_exact():
    for c in (1, 3):
        img = image(13, 17, c)
        want = TV.Normalize([0.2, 0.4, 0.6][:c], [0.3, 0.5, 0.7][:c])(TV.ToTensor()(pil(img)))
        tfs = (VP * 2)(to_tensor(), normalize(dvec(0.2, 0.4, 0.6), dvec(0.3, 0.5, 0.7), c))
        got = run(compose(tfs, 2), img)
        assert got.dtype == np.float32 and got.shape == (c, 13, 17)
        check_close(f"to_tensor+normalize c={c}", got, want.numpy(), rtol=0, atol=0)


def test_resize_pil_exact():
    cases = [((40, 60), (17, 23)), ((40, 60), (80, 131)), ((33, 31), (32, 32)), ((100, 100), (7, 9)),
             ((256, 300), (224, 224)), ((5, 9), (50, 3))]
    for (h, w), (oh, ow) in cases:
        for c in (1, 3):
            img = image(h, w, c)
            want = np_of(TV.Resize((oh, ow), interpolation=TV.InterpolationMode.BILINEAR)(pil(img)))
            got = run(resize_aa(oh, ow, AA_AUTO), img)
            check_close(f"resize PIL {h}x{w}->{oh}x{ow} c={c}", got, want, rtol=0, atol=0)


def test_resize_shorter_side_exact():
    for (h, w) in ((40, 60), (61, 40), (50, 50)):
        img = image(h, w)
        want = np_of(TV.Resize(32)(pil(img)))
        got = run(resize_aa(32, 0, AA_AUTO), img)
        check_close(f"resize(32) of {h}x{w}", got, want, rtol=0, atol=0)


def test_resize_tensor_matches_interpolate():
    for (h, w), (oh, ow) in [((40, 60), (17, 23)), ((20, 30), (47, 61)), ((64, 64), (32, 16))]:
        x = rng.random((3, h, w), dtype=np.float32)
        for aa, mode in ((False, AA_AUTO), (False, AA_OFF), (True, AA_ON)):
            want = F.resize(torch.tensor(x), [oh, ow], antialias=aa).numpy()
            got = run(resize_aa(oh, ow, mode), x)
            check_close(f"resize tensor aa={aa} {h}x{w}->{oh}x{ow}", got, want, rtol=1e-5, atol=1e-5)


def test_resize_uint8_without_antialias():
    img = image(40, 60)
    want = F.resize(torch.tensor(img).permute(2, 0, 1), [17, 23], antialias=False)
    got = run(resize_aa(17, 23, AA_OFF), img)
    diff = np.abs(got.astype(int) - want.permute(1, 2, 0).numpy().astype(int))
    assert diff.max() <= 1 and (diff == 0).mean() > 0.99, f"max {diff.max()} exact {(diff == 0).mean()}"


def test_center_crop_exact():
    for (h, w), (ch, cw) in [((20, 30), (10, 11)), ((21, 31), (10, 10)), ((8, 9), (12, 13)),
                             ((10, 10), (10, 10))]:
        img = image(h, w)
        want = np_of(TV.CenterCrop((ch, cw))(pil(img)))
        check_close(f"center crop PIL {h}x{w}->{ch}x{cw}", run(center_crop(ch, cw), img), want,
                    rtol=0, atol=0)
        x = rng.random((3, h, w), dtype=np.float32)
        want_t = TV.CenterCrop((ch, cw))(torch.tensor(x)).numpy()
        check_close(f"center crop tensor {h}x{w}->{ch}x{cw}", run(center_crop(ch, cw), x), want_t,
                    rtol=0, atol=0)


def windows(big, h, w):
    return [big[i:i + h, j:j + w] for i in range(big.shape[0] - h + 1)
            for j in range(big.shape[1] - w + 1)]


def test_random_crop_padding_modes():
    img = image(9, 11)
    names = {PAD_CONSTANT: "constant", PAD_EDGE: "edge", PAD_REFLECT: "reflect",
             PAD_SYMMETRIC: "symmetric"}
    for mode, name in names.items():
        o = CropOpts(padding=3, fill=17, padding_mode=mode)
        # a crop of the padded size is the whole padded image: exact F.pad
        whole = run(random_crop(15, 17, o), img)
        want = np_of(F.pad(pil(img), 3, fill=17, padding_mode=name))
        check_close(f"random crop pad {name}", whole, want, rtol=0, atol=0)
        # smaller crops are windows of it, and the seed picks which
        seen = set()
        for seed in range(12):
            got = run(random_crop(9, 11, o), img, seed)
            hits = [k for k, win in enumerate(windows(want, 9, 11)) if np.array_equal(win, got)]
            assert hits, f"{name}: crop of seed {seed} is not a window of the padded image"
            seen.add(hits[0])
            again = run(random_crop(9, 11, o), img, seed)
            assert np.array_equal(got, again), "same seed, different crop"
        assert len(seen) > 3, f"{name}: crops do not vary with the seed ({seen})"
    # tensors: ltrb padding and pad_if_needed as torchvision's F.pad
    x = rng.random((2, 5, 6), dtype=np.float32)
    o = CropOpts(padding_ltrb=(1, 2, 3, 4), pad_if_needed=True, padding_mode=PAD_REFLECT)
    got = run(random_crop(11, 14, o), x)
    want = F.pad(torch.tensor(x), [1, 2, 3, 4], padding_mode="reflect")  # [2, 11, 10]
    want = F.pad(want, [4, 0], padding_mode="reflect").numpy()  # torchvision pads 14-10 per side
    hits = [1 for j in range(want.shape[2] - 14 + 1) if np.array_equal(want[:, :, j:j + 14], got)]
    assert got.shape == (2, 11, 14) and hits, "random crop tensor ltrb + pad_if_needed"


def test_hflip_exact():
    img = image(7, 9)
    check_close("hflip p=1", run(hflip(1.0), img), np_of(F.hflip(pil(img))), rtol=0, atol=0)
    check_close("hflip p=0", run(hflip(0.0), img), img, rtol=0, atol=0)
    x = rng.random((3, 4, 5), dtype=np.float32)
    check_close("hflip tensor", run(hflip(1.0), x), F.hflip(torch.tensor(x)).numpy(), rtol=0, atol=0)
    flips = sum(not np.array_equal(run(hflip(0.5), img, s), img) for s in range(40))
    assert 8 < flips < 32, f"p=0.5 flipped {flips} of 40"


def test_grayscale():
    img = image(10, 12)
    for c in (1, 3):
        want = np_of(TV.Grayscale(c)(pil(img)))
        check_close(f"grayscale PIL {c}", run(grayscale(c), img), want, rtol=0, atol=0)
        x = rng.random((3, 6, 7), dtype=np.float32)
        want_t = TV.Grayscale(c)(torch.tensor(x)).numpy()
        check_close(f"grayscale tensor {c}", run(grayscale(c), x), want_t, rtol=0, atol=1e-7)


def test_color_jitter_fixed_factors():
    img = image(11, 13)
    x = rng.random((3, 11, 13), dtype=np.float32)
    adjust = [F.adjust_brightness, F.adjust_contrast, F.adjust_saturation]
    for k in range(3):
        for f in (0.0, 0.4, 1.0, 1.7):
            r = [None, None, None]
            r[k] = dvec(f, f)
            got = run(jitter_range(*r), img)
            want = np_of(adjust[k](pil(img), f))
            check_close(f"jitter {adjust[k].__name__} PIL {f}", got, want, rtol=0, atol=0)
            got_t = run(jitter_range(*r), x)
            want_t = adjust[k](torch.tensor(x), f).numpy()
            check_close(f"jitter {adjust[k].__name__} tensor {f}", got_t, want_t, rtol=0, atol=2e-6)


def test_rotation():
    for (h, w) in ((20, 20), (17, 24)):
        img = image(h, w)
        for angle in (0.0, 10.0, -33.3, 90.0, 180.0, 270.0, 45.0):
            got = run(rotation(angle, angle, 7), img)
            want = np_of(F.rotate(pil(img), angle, interpolation=TV.InterpolationMode.NEAREST,
                                  fill=7))
            check_close(f"rotate PIL {h}x{w} {angle}", got, want, rtol=0, atol=0)
            x = rng.random((2, h, w), dtype=np.float32)
            got_t = run(rotation(angle, angle, 0.25), x)
            want_t = F.rotate(torch.tensor(x), angle, fill=[0.25, 0.25]).numpy()
            same = np.isclose(got_t, want_t, atol=1e-6).mean()
            assert same > 0.995, f"rotate tensor {h}x{w} {angle}: only {same:.4f} equal"


def test_random_resized_crop_full_is_resize():
    img = image(30, 30)
    o = RRCOpts(scale=(1.0, 1.0), ratio=(1.0, 1.0))
    want = np_of(TV.Resize((12, 12))(pil(img)))
    check_close("rrc full", run(rrc(12, 12, o), img), want, rtol=0, atol=0)
    # a partial crop is some crop of the image resized: its size and the seed's reproducibility
    o = RRCOpts()
    a, b = run(rrc(16, 16, o), image(40, 50), 3), run(rrc(16, 16, o), image(40, 50), 3)
    assert a.shape == (16, 16, 3)


def test_compose_chain_imagenet_style():
    img = image(300, 400)
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    want = TV.Compose([TV.Resize(256), TV.CenterCrop(224), TV.ToTensor(),
                       TV.Normalize(mean, std)])(pil(img)).numpy()
    tfs = (VP * 4)(resize_aa(256, 0, AA_AUTO), center_crop(224, 224), to_tensor(),
                   normalize(dvec(*mean), dvec(*std), 3))
    got = run(compose(tfs, 4), img)
    check_close("Resize(256)+CenterCrop(224)+ToTensor+Normalize", got, want, rtol=0, atol=0)


def test_bad_arguments_are_errors():
    assert not normalize(dvec(0.5), dvec(0.0), 1) and "std" in err()
    assert not resize_aa(0, 5, AA_AUTO) and "size" in err()
    assert not grayscale(2) and "1 or 3" in err()
    x = rng.random((3, 4, 4), dtype=np.float32)
    tf = normalize(dvec(0.5, 0.5), dvec(0.5, 0.5), 2)
    assert not apply_(tf, T(x), 1) and "channels" in err()
    tf_free(tf)
    tf = normalize(dvec(0.5), dvec(0.5), 1)
    assert not apply_(tf, T(image(4, 4)), 1) and "to_tensor" in err()
    tf_free(tf)


run_tests(globals())
