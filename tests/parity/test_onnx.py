"""ONNX export (include/deepc/onnx.h) against ONNX Runtime and the ONNX checker.

Every model is built in deepc (zoo models, layer specs with every exported layer kind), run in
eval mode on a random batch, written with dc_onnx_export, checked with
onnx.checker.check_model(full_check=True) (Debian python3-onnx) and run in ONNX Runtime under
node (npm onnxruntime-node, tests/onnx/ort_run.js): the outputs must agree within 1e-5 of the
largest output. The batch of the run differs from the export's example batch (dynamic batch).
Exits 77 (skip) only when node or onnxruntime-node is missing and cannot be installed.
DEEPC_ONNX_ALL=1 adds the 224x224 VGG-13/16/19 (500 MB files each).
"""
import ctypes as C
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dc import Shape, TP, lib, T, to_np, err, run_tests  # noqa: E402

SRC = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
RUNNER = os.path.join(SRC, "tests", "onnx", "ort_run.js")
raw = lib.raw
TOL = 1e-5


def find_ort():
    """(node, onnxruntime-node folder) or None: installs the package when it is missing."""
    node = shutil.which("node") or ("/usr/bin/node" if os.path.exists("/usr/bin/node") else None)
    if not node:
        return None
    dirs = [os.environ.get("DEEPC_ORT_DIR", ""), os.path.join(SRC, "data", "onnxruntime"),
            "/work/main/data/onnxruntime"]
    for d in dirs:
        p = os.path.join(d, "node_modules", "onnxruntime-node")
        if d and os.path.exists(os.path.join(p, "package.json")):
            return node, p
    npm = shutil.which("npm")
    if not npm:
        return None
    d = os.path.join(SRC, "data", "onnxruntime")
    os.makedirs(d, exist_ok=True)
    r = subprocess.run([npm, "install", "--ignore-scripts", "--no-audit", "--no-fund",
                        "onnxruntime-node"], cwd=d, capture_output=True, text=True, timeout=900)
    p = os.path.join(d, "node_modules", "onnxruntime-node")
    return (node, p) if r.returncode == 0 and os.path.exists(p) else None


ORT = find_ort()
if ORT is None:
    print("SKIP: node or the npm package onnxruntime-node is not available")
    sys.exit(77)
import onnx  # noqa: E402  (python3-onnx; after the skip so that its absence fails loudly)


class ZooOpts(C.Structure):
    _fields_ = [("num_classes", C.c_int64), ("in_channels", C.c_int64),
                ("in_features", C.c_int64), ("hidden", C.c_void_p), ("nhidden", C.c_int),
                ("zero_init_residual", C.c_bool), ("width", C.c_int64),
                ("small_input", C.c_bool), ("dropout", C.c_double), ("no_init", C.c_bool)]


class ExportOpts(C.Structure):
    _fields_ = [("input", Shape), ("opset", C.c_int), ("class_names", C.POINTER(C.c_char_p)),
                ("num_class_names", C.c_int64), ("model_name", C.c_char_p)]


class SpecOpts(C.Structure):
    _fields_ = [("classes", C.c_int64), ("max_params", C.c_int64)]


def sig(name, res, *args):
    f = getattr(raw, name)
    f.restype = res
    f.argtypes = list(args)


VP = C.c_void_p
sig("dc_zoo_create_opt", VP, C.c_char_p, ZooOpts)
sig("dc_nn_from_spec_opt", VP, C.c_char_p, SpecOpts)
sig("dc_module_free", None, VP)
sig("dc_module_forward", TP, VP, TP)
sig("dc_module_train", None, VP, C.c_bool)
sig("dc_onnx_export", C.c_int, VP, C.c_char_p, C.POINTER(ExportOpts))
sig("dc_set_grad_enabled", C.c_bool, C.c_bool)
sig("dc_manual_seed", None, C.c_uint64)
sig("dc_module_get_buffer", TP, VP, C.c_char_p)
sig("dc_uniform_", C.c_int, TP, C.c_double, C.c_double)

TMP = tempfile.mkdtemp(prefix="deepc-onnx-")


def shape_of(dims):
    s = Shape()
    s.ndim = len(dims)
    for i, v in enumerate(dims):
        s.d[i] = v
    return s


def ort_run(path, x):
    xin, yout = os.path.join(TMP, "x.bin"), os.path.join(TMP, "y.bin")
    x.astype("<f4").tofile(xin)
    r = subprocess.run([ORT[0], RUNNER, ORT[1], path, xin, ",".join(map(str, x.shape)), yout],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, f"onnxruntime on {path}: {r.stderr.strip()}"
    info = json.loads(r.stdout.strip().splitlines()[-1])
    return np.fromfile(yout, dtype="<f4").reshape(info["dims"])


def export(m, one, name, classes=None, opset=0):
    path = os.path.join(TMP, name + ".onnx")
    o = ExportOpts()
    o.input = shape_of(one)
    o.opset = opset
    o.model_name = name.encode()
    if classes:
        arr = (C.c_char_p * len(classes))(*[c.encode() for c in classes])
        o.class_names = arr
        o.num_class_names = len(classes)
    rc = raw.dc_onnx_export(m, path.encode(), C.byref(o))
    assert rc == 0, f"export {name}: {err()}"
    return path


def randomise_bn(m, names):
    """Gives batch-norm running statistics values other than 0 and 1."""
    for n in names:
        mean = raw.dc_module_get_buffer(m, (n + ".running_mean").encode())
        var = raw.dc_module_get_buffer(m, (n + ".running_var").encode())
        assert mean and var, err()
        assert raw.dc_uniform_(mean, -0.2, 0.2) == 0 and raw.dc_uniform_(var, 0.5, 1.5) == 0


def check_model(m, one, name, batch=3, classes=None, opset=0):
    """Exports m, checks the file, compares ONNX Runtime's outputs with deepc's own."""
    raw.dc_module_train(m, False)
    rng = np.random.default_rng(len(name))
    x = rng.standard_normal((batch, *one)).astype(np.float32)
    prev = raw.dc_set_grad_enabled(False)
    want = to_np(raw.dc_module_forward(m, T(x)))
    raw.dc_set_grad_enabled(prev)
    path = export(m, one, name, classes, opset)
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    got = ort_run(path, x)
    assert got.shape == want.shape, f"{name}: onnxruntime gives {got.shape}, deepc {want.shape}"
    scale = max(float(np.abs(want).max()), 1e-30)
    diff = float(np.abs(got - want).max())
    assert diff <= TOL * scale, f"{name}: max |ort - deepc| = {diff:g} > {TOL} * {scale:g}"
    print(f"  {name}: {len(model.graph.node)} nodes, max diff {diff:.3g} (scale {scale:.3g})")
    os.remove(path)
    return model


def zoo(name, one, **kw):
    o = ZooOpts(**kw)
    m = raw.dc_zoo_create_opt(name.encode(), o)
    assert m, f"zoo {name}: {err()}"
    return m


ZOO_SMALL = [("mlp", (784,), {}), ("lenet5", (1, 28, 28), {}), ("cnn_fashion", (1, 28, 28), {}),
             ("vgg11_cifar", (3, 32, 32), {}), ("vgg11_bn_cifar", (3, 32, 32), {}),
             ("vgg13_cifar", (3, 32, 32), {}), ("vgg13_bn_cifar", (3, 32, 32), {}),
             ("vgg16_cifar", (3, 32, 32), {}), ("vgg16_bn_cifar", (3, 32, 32), {}),
             ("vgg19_cifar", (3, 32, 32), {}), ("vgg19_bn_cifar", (3, 32, 32), {}),
             ("resnet18", (3, 64, 64), {"small_input": True, "num_classes": 10})]
ZOO_224 = [("resnet18", {}), ("resnet34", {}), ("resnet50", {}), ("vgg11", {"num_classes": 10}),
           ("vgg11_bn", {"num_classes": 10})]
if os.environ.get("DEEPC_ONNX_ALL"):
    ZOO_224 += [(n, {"num_classes": 10}) for n in
                ("vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn")]


def test_zoo_small():
    for name, one, kw in ZOO_SMALL:
        m = zoo(name, one, **kw)
        try:
            check_model(m, one, name)
        finally:
            raw.dc_module_free(m)


def test_zoo_224():
    for name, kw in ZOO_224:
        m = zoo(name, (3, 224, 224), **kw)
        try:
            model = check_model(m, (3, 224, 224), name, batch=2)
            inits = {i.name for i in model.graph.initializer}
            want = "layer1.0.conv1.weight" if name.startswith("resnet") else "features.0.weight"
            assert want in inits, f"{name}: no initializer {want} (names follow the module tree)"
        finally:
            raw.dc_module_free(m)


SPECS = [
    ("convs", (3, 17, 19),
     "conv2d(3, 8, 3, stride=2, padding=1), batchnorm2d(8), relu, "
     "conv2d(8, 8, 3, padding=2, dilation=2, groups=4), leakyrelu(0.2), "
     "conv2d(8, 6, (3, 5), padding='same', bias=False), elu(0.7), "
     "maxpool2d(3, stride=2, padding=1), avgpool2d(2, ceil_mode=True), "
     "adaptiveavgpool2d(1), flatten, linear(6, 5), softmax(dim=1)"),
    ("pools", (4, 24, 24),
     "maxpool2d(3, stride=1, dilation=2), "
     "avgpool2d(3, stride=1, padding=1, count_include_pad=False), "
     "adaptivemaxpool2d((10, 5)), adaptiveavgpool2d((1, 5)), flatten(2), logsoftmax(dim=-1)"),
    ("acts", (12,),
     "linear(12, 16), gelu, linear(16, 16), gelu(approximate='tanh'), linear(16, 16), selu, "
     "linear(16, 16), sigmoid, linear(16, 16), tanh, linear(16, 16), softplus, "
     "linear(16, 16), softplus(beta=2, threshold=10), linear(16, 16), hardtanh(-0.5, 0.5), "
     "dropout(0.5), linear(16, 16), batchnorm1d(16), identity, linear(16, 4), softmax"),
    ("flatten_mid", (2, 3, 4, 5), "flatten(1, 2), linear(5, 3), flatten(0, -1)"),
]


def test_specs():
    for name, one, spec in SPECS:
        m = raw.dc_nn_from_spec_opt(spec.encode(), SpecOpts(0, 0))
        assert m, f"spec {name}: {err()}"
        try:
            if "batchnorm2d" in spec:
                randomise_bn(m, ["1"])
            if name == "acts":
                randomise_bn(m, ["18"])
            check_model(m, one, name, batch=1 if name == "flatten_mid" else 3)
        finally:
            raw.dc_module_free(m)


def test_metadata_and_batch():
    m = zoo("cnn_fashion", (1, 28, 28))
    try:
        classes = [f"class {i}" for i in range(10)]
        model = check_model(m, (1, 28, 28), "cnn_meta", batch=7, classes=classes, opset=13)
        meta = {p.key: p.value for p in model.metadata_props}
        assert meta.get("classes") == "\n".join(classes), meta
        assert meta.get("deepc.model") == "cnn_meta", meta
        assert model.opset_import[0].version == 13
        dim0 = model.graph.input[0].type.tensor_type.shape.dim[0]
        assert dim0.dim_param == "batch", dim0
        names = {n.name for n in model.graph.node}
        assert "0" in names and "1" in names, names  # Sequential children "0", "1", ...
    finally:
        raw.dc_module_free(m)


def test_refusals():
    m = raw.dc_nn_from_spec_opt(b"linear(4, 3)", SpecOpts(0, 0))
    try:
        o = ExportOpts()
        o.input = shape_of((4,))
        o.opset = 9
        assert raw.dc_onnx_export(m, os.path.join(TMP, "x.onnx").encode(), C.byref(o)) != 0
        assert "opset 9" in err(), err()
        o.opset = 0
        o.input = shape_of(())
        assert raw.dc_onnx_export(m, os.path.join(TMP, "x.onnx").encode(), C.byref(o)) != 0
        o.input = shape_of((4,))
        bad = os.path.join(TMP, "no-such-dir", "x.onnx").encode()
        assert raw.dc_onnx_export(m, bad, C.byref(o)) != 0 and "no-such-dir" in err(), err()
    finally:
        raw.dc_module_free(m)
    m = raw.dc_nn_from_spec_opt(b"batchnorm1d(4, track_running_stats=False)", SpecOpts(0, 0))
    assert m, err()
    try:
        o = ExportOpts()
        o.input = shape_of((4,))
        assert raw.dc_onnx_export(m, os.path.join(TMP, "x.onnx").encode(), C.byref(o)) != 0
        assert "track_running_stats" in err(), err()
        assert not os.path.exists(os.path.join(TMP, "x.onnx"))
        assert not os.path.exists(os.path.join(TMP, "x.onnx.tmp"))
    finally:
        raw.dc_module_free(m)


if __name__ == "__main__":
    try:
        run_tests(globals())
    finally:
        shutil.rmtree(TMP, ignore_errors=True)
