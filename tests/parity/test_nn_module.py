"""PyTorch parity of the module layer (include/deepc/nn.h).

Every layer is built from a layer spec, gets torch's weights through a state dict, and must match
torch's repr, forward output, input gradient, parameter gradients and running statistics, in train
and eval mode. A small CNN's state dict written by torch to .npy files loads and gives torch's
outputs; summary numbers (shapes, parameter counts, multiply-adds) match torch's; the custom-module
example of docs/nn.md compiles and runs.
"""
import ctypes as C
import os
import re
import subprocess
import tempfile

import numpy as np
import torch
import torch.nn as nn

from dc import (DEVICE, TP, Shape, T, backward, check, check_close, err, grad_np, lib, run_tests,
                shape, to_np)

raw = lib.raw
VP = C.c_void_p
libc = C.CDLL(None)
libc.free.argtypes = [VP]
SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")


class SpecOpts(C.Structure):
    _fields_ = [("classes", C.c_int64)]


class SummaryRow(C.Structure):
    _fields_ = [("name", C.c_char_p), ("type", C.c_char_p), ("depth", C.c_int),
                ("is_leaf", C.c_bool), ("out_shape", Shape), ("params", C.c_int64),
                ("macs", C.c_int64)]


class Summary(C.Structure):
    _fields_ = [("nrows", C.c_int), ("rows", C.POINTER(SummaryRow)), ("input_shape", Shape),
                ("output_shape", Shape), ("total_params", C.c_int64),
                ("trainable_params", C.c_int64), ("non_trainable_params", C.c_int64),
                ("total_macs", C.c_int64), ("input_bytes", C.c_int64),
                ("activation_bytes", C.c_int64), ("param_bytes", C.c_int64)]


def sig(name, res, *args):
    f = getattr(raw, name)
    f.restype = res
    f.argtypes = list(args)


sig("dc_nn_from_spec_opt", VP, C.c_char_p, SpecOpts)
sig("dc_module_to", C.c_int, VP, C.c_int)
sig("dc_module_free", None, VP)
sig("dc_module_forward", TP, VP, TP)
sig("dc_module_train", None, VP, C.c_bool)
sig("dc_module_repr", VP, VP)
sig("dc_module_get_parameter", TP, VP, C.c_char_p)
sig("dc_module_get_buffer", TP, VP, C.c_char_p)
sig("dc_module_num_parameters", C.c_int64, VP, C.c_bool)
sig("dc_module_state_dict", VP, VP)
sig("dc_module_load_state_dict", C.c_int, VP, VP, C.c_bool, VP)
sig("dc_state_dict_new", VP)
sig("dc_state_dict_free", None, VP)
sig("dc_state_dict_set", C.c_int, VP, C.c_char_p, TP)
sig("dc_state_dict_size", C.c_int, VP)
sig("dc_state_dict_key_at", C.c_char_p, VP, C.c_int)
sig("dc_summary", C.POINTER(Summary), VP, Shape)
sig("dc_summary_free", None, C.POINTER(Summary))


def build(spec, classes=0):
    """The module of spec, moved to the suite's device (DC_PARITY_DEVICE, dc.py)."""
    m = raw.dc_nn_from_spec_opt(spec.encode(), SpecOpts(classes))
    assert m, f"spec {spec!r}: {err()}"
    assert raw.dc_module_to(m, DEVICE) == 0, f"spec {spec!r}: {err()}"
    return m


def repr_of(m):
    p = raw.dc_module_repr(m)
    assert p, err()
    s = C.string_at(p).decode()
    libc.free(p)
    return s


def load_arrays(m, arrays, strict=True):
    """Loads {key: numpy array} into module m through a dc_state_dict."""
    sd = raw.dc_state_dict_new()
    for k, a in arrays.items():
        assert raw.dc_state_dict_set(sd, k.encode(), T(np.ascontiguousarray(a))) == 0, err()
    rc = raw.dc_module_load_state_dict(m, sd, strict, None)
    raw.dc_state_dict_free(sd)
    return rc


def load_torch(m, tmod):
    arrays = {k: v.detach().numpy() for k, v in tmod.state_dict().items()}
    assert load_arrays(m, arrays) == 0, err()


def keys_of(m):
    sd = raw.dc_module_state_dict(m)
    keys = [raw.dc_state_dict_key_at(sd, i).decode() for i in range(raw.dc_state_dict_size(sd))]
    raw.dc_state_dict_free(sd)
    return keys


def run_parity(spec, tmod, xshape, train, tol=1e-5, seed=0):
    """Forward, input grad, parameter grads and buffers of spec vs torch module tmod."""
    rng = np.random.default_rng(seed)
    tseq = nn.Sequential(tmod)
    m = build(spec)
    try:
        assert repr_of(m) == repr(tseq), f"repr:\n{repr_of(m)}\nvs torch\n{tseq!r}"
        assert keys_of(m) == list(tseq.state_dict().keys()), (keys_of(m), tseq.state_dict().keys())
        load_torch(m, tseq)
        tseq.train(train)
        raw.dc_module_train(m, train)
        x = rng.standard_normal(xshape).astype(np.float32)
        xt = torch.tensor(x, requires_grad=True)
        yt = tseq(xt)
        xd = T(x, requires_grad=True)
        yd = check(raw.dc_module_forward(m, xd))
        name = f"{spec} ({'train' if train else 'eval'}, x {xshape})"
        check_close(name + " forward", to_np(yd), yt.detach().numpy(), rtol=tol, atol=tol)
        g = rng.standard_normal(tuple(yt.shape)).astype(np.float32)
        yt.backward(torch.tensor(g))
        backward(yd, T(g))
        check_close(name + " grad x", grad_np(xd), xt.grad.numpy(), rtol=tol, atol=tol)
        for k, p in tseq.named_parameters():
            gd = grad_np(check(raw.dc_module_get_parameter(m, k.encode())))
            check_close(f"{name} grad {k}", gd, p.grad.numpy(), rtol=tol, atol=tol)
        for k, b in tseq.named_buffers():
            bd = to_np(check(raw.dc_module_get_buffer(m, k.encode())))
            check_close(f"{name} buffer {k}", bd, b.numpy(), rtol=tol, atol=tol)
    finally:
        raw.dc_module_free(m)


# (spec, torch module, input shape, tolerance)
LAYERS = [
    ("linear(5, 3)", lambda: nn.Linear(5, 3), (4, 5), 1e-5),
    ("linear(5, 3, bias=False)", lambda: nn.Linear(5, 3, bias=False), (2, 3, 5), 1e-5),
    ("conv2d(3, 4, 3, stride=2, padding=1)", lambda: nn.Conv2d(3, 4, 3, stride=2, padding=1),
     (2, 3, 9, 7), 1e-4),
    ("conv2d(4, 6, (3, 5), padding='same', groups=2, bias=False)",
     lambda: nn.Conv2d(4, 6, (3, 5), padding="same", groups=2, bias=False), (1, 4, 8, 6), 1e-4),
    ("conv2d(2, 4, 3, dilation=2, padding=(1, 2))",
     lambda: nn.Conv2d(2, 4, 3, dilation=2, padding=(1, 2)), (2, 2, 7, 9), 1e-4),
    ("maxpool2d(2)", lambda: nn.MaxPool2d(2), (2, 3, 8, 6), 1e-6),
    ("maxpool2d(3, stride=2, padding=1, ceil_mode=True)",
     lambda: nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True), (2, 3, 9, 7), 1e-6),
    ("avgpool2d(3, stride=2, padding=1, count_include_pad=False)",
     lambda: nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False), (2, 3, 9, 7), 1e-5),
    ("avgpool2d((2, 3))", lambda: nn.AvgPool2d((2, 3)), (1, 2, 6, 9), 1e-5),
    ("adaptiveavgpool2d((3, 2))", lambda: nn.AdaptiveAvgPool2d((3, 2)), (2, 3, 7, 5), 1e-5),
    ("adaptiveavgpool2d((None, 2))", lambda: nn.AdaptiveAvgPool2d((None, 2)), (2, 3, 7, 5), 1e-5),
    ("adaptivemaxpool2d(1)", lambda: nn.AdaptiveMaxPool2d(1), (2, 3, 5, 5), 1e-6),
    ("batchnorm2d(3)", lambda: nn.BatchNorm2d(3), (4, 3, 5, 6), 1e-4),
    ("batchnorm2d(3, momentum=None)", lambda: nn.BatchNorm2d(3, momentum=None), (2, 3, 4, 4),
     1e-4),
    ("batchnorm2d(3, affine=False, eps=0.001, momentum=0.3)",
     lambda: nn.BatchNorm2d(3, affine=False, eps=0.001, momentum=0.3), (2, 3, 4, 4), 1e-4),
    ("batchnorm2d(3, track_running_stats=False)",
     lambda: nn.BatchNorm2d(3, track_running_stats=False), (2, 3, 4, 4), 1e-4),
    ("batchnorm1d(5)", lambda: nn.BatchNorm1d(5), (6, 5), 1e-4),
    ("batchnorm1d(5)", lambda: nn.BatchNorm1d(5), (3, 5, 4), 1e-4),
    ("relu", nn.ReLU, (3, 7), 1e-6),
    ("leakyrelu(0.2)", lambda: nn.LeakyReLU(0.2), (3, 7), 1e-6),
    ("elu(alpha=0.5)", lambda: nn.ELU(alpha=0.5), (3, 7), 1e-6),
    ("selu", nn.SELU, (3, 7), 1e-5),
    ("gelu", nn.GELU, (3, 7), 1e-5),
    ("gelu(approximate='tanh')", lambda: nn.GELU(approximate="tanh"), (3, 7), 1e-5),
    ("sigmoid", nn.Sigmoid, (3, 7), 1e-6),
    ("tanh", nn.Tanh, (3, 7), 1e-6),
    ("softmax(dim=1)", lambda: nn.Softmax(dim=1), (3, 7), 1e-6),
    ("logsoftmax(dim=-1)", lambda: nn.LogSoftmax(dim=-1), (2, 3, 7), 1e-5),
    ("softplus(beta=2, threshold=1)", lambda: nn.Softplus(beta=2, threshold=1), (3, 7), 1e-5),
    ("hardtanh(-0.5, 0.7)", lambda: nn.Hardtanh(-0.5, 0.7), (3, 7), 1e-6),
    ("flatten", nn.Flatten, (2, 3, 4, 5), 1e-6),
    ("flatten(0, 2)", lambda: nn.Flatten(0, 2), (2, 3, 4, 5), 1e-6),
    ("identity", nn.Identity, (2, 3), 1e-6),
    ("dropout(0.0)", lambda: nn.Dropout(0.0), (3, 7), 1e-6),
]


def test_layers_train_and_eval():
    for spec, ctor, xshape, tol in LAYERS:
        for train in (True, False):
            torch.manual_seed(0)
            run_parity(spec, ctor(), xshape, train, tol)


def test_batchnorm_running_stats_over_steps():
    """Three training steps then eval: running stats (momentum and cumulative) stay in step."""
    for spec, ctor in (("batchnorm2d(3)", lambda: nn.BatchNorm2d(3)),
                       ("batchnorm2d(3, momentum=None)", lambda: nn.BatchNorm2d(3, momentum=None))):
        tseq = nn.Sequential(ctor())
        m = build(spec)
        load_torch(m, tseq)
        rng = np.random.default_rng(1)
        for step in range(3):
            x = (rng.standard_normal((4, 3, 3, 3)) * (step + 1) + step).astype(np.float32)
            tseq(torch.tensor(x))
            check(raw.dc_module_forward(m, T(x)))
        for k, b in tseq.named_buffers():
            check_close(f"{spec} {k}", to_np(raw.dc_module_get_buffer(m, k.encode())), b.numpy(),
                        rtol=1e-4, atol=1e-5)
        tseq.eval()
        raw.dc_module_train(m, False)
        x = rng.standard_normal((2, 3, 3, 3)).astype(np.float32)
        check_close(spec + " eval", to_np(raw.dc_module_forward(m, T(x))),
                    tseq(torch.tensor(x)).detach().numpy(), rtol=1e-4, atol=1e-5)
        raw.dc_module_free(m)


def test_dropout_train_masks_and_scales():
    m = build("dropout(0.25), dropout2d(0.5)")
    x = np.ones((8, 16, 3, 3), np.float32)
    xd = T(x, requires_grad=True)
    y = to_np(raw.dc_module_forward(m, xd))
    vals = set(np.unique(np.round(y, 5)).tolist())
    assert vals <= {0.0, np.float32(1 / 0.75 / 0.5).round(5)}, vals
    chan = y.reshape(8, 16, 9)
    zero_chan = (chan == 0).all(axis=2)
    assert 0.2 < zero_chan.mean() < 0.8, zero_chan.mean()  # whole channels dropped (Dropout2d)
    assert 0 < (y == 0).mean() < 0.9
    raw.dc_module_train(m, False)
    check_close("dropout eval", to_np(raw.dc_module_forward(m, T(x))), x)
    raw.dc_module_free(m)


def small_cnn():
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))


CNN_SPEC = ("conv2d(1, 4, 3, padding=1), batchnorm2d(4), relu, maxpool2d(2), "
            "conv2d(4, 8, 3, stride=2, padding=1), batchnorm2d(8), relu, "
            "adaptiveavgpool2d(1), flatten, linear(8, 10)")


def test_state_dict_written_by_torch_as_npy_files():
    torch.manual_seed(3)
    model = small_cnn()
    with torch.no_grad():  # non-trivial running statistics
        for _ in range(3):
            model(torch.randn(5, 1, 12, 10) * 2 + 1)
    model.eval()
    x = torch.randn(3, 1, 12, 10)
    want = model(x).detach().numpy()
    with tempfile.TemporaryDirectory() as d:
        keys = list(model.state_dict().keys())
        for i, (k, v) in enumerate(model.state_dict().items()):
            np.save(os.path.join(d, f"{i:03d}_{k}.npy"), v.numpy())
        files = sorted(f for f in os.listdir(d) if f.endswith(".npy"))
        arrays = {f[4:-4]: np.load(os.path.join(d, f)) for f in files}
    assert list(arrays) == keys
    assert arrays["1.num_batches_tracked"].dtype == np.int64
    assert arrays["1.num_batches_tracked"].shape == ()
    m = build(CNN_SPEC)
    assert keys_of(m) == keys, (keys_of(m), keys)
    assert load_arrays(m, arrays) == 0, err()
    assert int(to_np(raw.dc_module_get_buffer(m, b"5.num_batches_tracked"))) == 3
    raw.dc_module_train(m, False)
    got = to_np(check(raw.dc_module_forward(m, T(x.numpy()))))
    check_close("small CNN from torch's state dict", got, want, rtol=1e-4, atol=1e-5)
    # train mode, gradients of every parameter
    model.train()
    raw.dc_module_train(m, True)
    xt = x.clone().requires_grad_(True)
    model(xt).square().sum().backward()
    yd = check(raw.dc_module_forward(m, T(x.numpy())))
    backward(check(lib.dc_sum_all(check(lib.dc_square(yd)))))
    for k, p in model.named_parameters():
        check_close("small CNN grad " + k, grad_np(raw.dc_module_get_parameter(m, k.encode())),
                    p.grad.numpy(), rtol=1e-3, atol=1e-4)
    raw.dc_module_free(m)


def test_bad_state_dicts():
    model = small_cnn()
    arrays = {k: v.numpy() for k, v in model.state_dict().items()}
    m = build(CNN_SPEC)
    bad = dict(arrays)
    del bad["4.weight"]
    bad["9.weight"] = np.zeros((5, 8), np.float32)
    bad["fc.weight"] = np.zeros((2, 2), np.float32)
    assert load_arrays(m, bad) != 0
    e = err()
    assert 'missing key(s): "4.weight"' in e, e
    assert 'unexpected key(s): "fc.weight"' in e, e
    assert "size mismatch for 9.weight: copying a tensor of shape [5, 8] from the state dict, " \
           "the shape in the model is [10, 8]" in e, e
    raw.dc_module_free(m)


def torch_macs(model, x):
    """Multiply-adds by deepc's convention: conv Cout*Ho*Wo*Cin/g*kH*kW, linear in*out per row,
    others torchinfo's batch * own parameters."""
    total = [0]

    def hook(mod, inp, out):
        if isinstance(mod, nn.Conv2d):
            k = mod.kernel_size[0] * mod.kernel_size[1]
            total[0] += out.numel() * mod.in_channels // mod.groups * k
        elif isinstance(mod, nn.Linear):
            total[0] += out.numel() * mod.in_features
        elif len(list(mod.children())) == 0:
            total[0] += out.shape[0] * sum(p.numel() for p in mod.parameters(recurse=False))

    hs = [mod.register_forward_hook(hook) for mod in model.modules()]
    out = model(x)
    for h in hs:
        h.remove()
    return total[0], tuple(out.shape)


def summary_parity(spec, model, in_shape):
    m = build(spec)
    s = raw.dc_summary(m, shape(*in_shape))
    assert s, err()
    model.eval()
    with torch.no_grad():
        macs, out_shape = torch_macs(model, torch.zeros(1, *in_shape))
    v = s.contents
    got_out = tuple(v.output_shape.d[i] for i in range(v.output_shape.ndim))
    assert got_out == out_shape, (spec, got_out, out_shape)
    n_torch = sum(p.numel() for p in model.parameters())
    assert v.total_params == n_torch, (spec, v.total_params, n_torch)
    assert v.trainable_params == n_torch and v.non_trainable_params == 0
    assert v.total_macs == macs, (spec, v.total_macs, macs)
    rows = [v.rows[i] for i in range(v.nrows)]
    assert len(rows) == 1 + len(list(model.children()))
    raw.dc_summary_free(s)
    raw.dc_module_free(m)
    return got_out, n_torch, macs


def test_summary_course_questions():
    # 48x64x10 input, 3x3 kernel, 10 -> 20 channels (stride 1, no padding)
    out, params, macs = summary_parity("conv2d(10, 20, 3)", nn.Sequential(nn.Conv2d(10, 20, 3)),
                                       (10, 48, 64))
    assert (out, params, macs) == ((1, 20, 46, 62), 1820, 5133600), (out, params, macs)
    # 98x98x16 input, 64 filters 6x6, stride 4, padding 2
    out, params, macs = summary_parity("conv2d(16, 64, 6, stride=4, padding=2)",
                                       nn.Sequential(nn.Conv2d(16, 64, 6, stride=4, padding=2)),
                                       (16, 98, 98))
    assert (out, params, macs) == ((1, 64, 25, 25), 36928, 23040000), (out, params, macs)


def test_summary_models():
    summary_parity(CNN_SPEC, small_cnn(), (1, 12, 10))
    lenet = ("conv2d(1, 6, 5, padding=2), tanh, avgpool2d(2), conv2d(6, 16, 5), tanh, "
             "avgpool2d(2), flatten, linear(400, 120), tanh, linear(120, 84), tanh, linear(84, 10)")
    model = nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.Tanh(), nn.AvgPool2d(2),
                          nn.Conv2d(6, 16, 5), nn.Tanh(), nn.AvgPool2d(2), nn.Flatten(),
                          nn.Linear(400, 120), nn.Tanh(), nn.Linear(120, 84), nn.Tanh(),
                          nn.Linear(84, 10))
    summary_parity(lenet, model, (1, 28, 28))


def test_reprs_of_every_layer_kind():
    specs = {
        "conv2d(1,32,5,padding=2), batchnorm2d(32), relu, maxpool2d(2), flatten, "
        "linear(6272,10)": nn.Sequential(nn.Conv2d(1, 32, 5, padding=2), nn.BatchNorm2d(32),
                                         nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                                         nn.Linear(6272, 10)),
        "maxpool2d((2,3), stride=1, dilation=2), avgpool2d(3, 2, 1), adaptivemaxpool2d((2, 2)), "
        "softplus, softmax, elu, leakyrelu, hardtanh, dropout2d(0.2), batchnorm1d(7, momentum=None)":
        nn.Sequential(nn.MaxPool2d((2, 3), stride=1, dilation=2), nn.AvgPool2d(3, 2, 1),
                      nn.AdaptiveMaxPool2d((2, 2)), nn.Softplus(), nn.Softmax(), nn.ELU(),
                      nn.LeakyReLU(), nn.Hardtanh(), nn.Dropout2d(0.2),
                      nn.BatchNorm1d(7, momentum=None)),
    }
    for spec, model in specs.items():
        m = build(spec)
        assert repr_of(m) == repr(model), f"\n{repr_of(m)}\nvs torch\n{model!r}"
        raw.dc_module_free(m)


def test_default_init_statistics_match_torch():
    """Default init: bounds 1/sqrt(fan_in) (weights via kaiming_uniform(a=sqrt 5)), BN 1/0."""
    m = build("conv2d(16, 32, 3), linear(288, 50), batchnorm2d(8)")
    torch.manual_seed(0)
    conv, lin = nn.Conv2d(16, 32, 3), nn.Linear(288, 50)
    for k, ref in (("0.weight", conv.weight), ("0.bias", conv.bias), ("1.weight", lin.weight),
                   ("1.bias", lin.bias)):
        a = to_np(raw.dc_module_get_parameter(m, k.encode()))
        r = ref.detach().numpy()
        bound = 1 / np.sqrt(144 if k.startswith("0") else 288)
        assert np.abs(a).max() <= bound + 1e-7 and np.abs(a).max() > 0.9 * bound, k
        assert abs(a.std() - r.std()) < 0.15 * r.std(), (k, a.std(), r.std())
    check_close("bn weight", to_np(raw.dc_module_get_parameter(m, b"2.weight")), np.ones(8))
    check_close("bn running_var", to_np(raw.dc_module_get_buffer(m, b"2.running_var")), np.ones(8))
    raw.dc_module_free(m)


def test_docs_example_compiles_and_runs():
    """The custom-module example of docs/nn.md is a complete program: compile it and run it."""
    doc = open(os.path.join(SRC, "docs", "nn.md")).read()
    match = re.search(r"<!-- example: residual -->\s*```c\n(.*?)```", doc, re.S)
    assert match, "docs/nn.md lacks the residual example block"
    libpath = os.path.abspath(os.environ.get("DEEPC_LIB", os.path.join(SRC, "build",
                                                                       "libdeepc.so")))
    with tempfile.TemporaryDirectory() as d:
        src = os.path.join(d, "example.c")
        with open(src, "w") as f:
            f.write(match.group(1))
        exe = os.path.join(d, "example")
        cc = subprocess.run(["cc", "-std=gnu11", "-Wall", "-Wextra", "-Werror", src, "-o", exe,
                             "-I", os.path.join(SRC, "include"), libpath,
                             "-Wl,-rpath," + os.path.dirname(libpath), "-lm"],
                            capture_output=True, text=True)
        assert cc.returncode == 0, cc.stderr
        run = subprocess.run([exe], capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, run.stdout + run.stderr
        assert "Total params: 38,213" in run.stdout, run.stdout
        assert "Trainable params: 165" in run.stdout, run.stdout
        assert "grad of layer1.0.conv1.weight: yes" in run.stdout, run.stdout
        assert "layer1.0.conv1 (Conv2d)" in run.stdout, run.stdout


run_tests(globals())
