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
     "conv2d(3, 8, 3, stride=2, padding=1), batchnorm2d(8), relu, dropout2d(0.3), "
     "batchnorm2d(8, affine=False, eps=0.001), "
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
        left = [f for f in os.listdir(TMP) if f.startswith("x.onnx")]
        assert not left, left
    finally:
        raw.dc_module_free(m)


# ---- import ----
class CEOpts(C.Structure):
    _fields_ = [("weight", TP), ("ignore_index", C.c_int64), ("has_ignore_index", C.c_bool),
                ("label_smoothing", C.c_double), ("reduction", C.c_int)]


class Named(C.Structure):
    _fields_ = [("name", C.c_char_p), ("tensor", TP)]


class BwOpts(C.Structure):
    _fields_ = [("grad", TP), ("retain_graph", C.c_bool), ("create_graph", C.c_bool)]


sig("dc_onnx_load", VP, C.c_char_p)
sig("dc_module_parameters", C.POINTER(Named), VP, C.POINTER(C.c_int))
sig("dc_named_tensors_free", None, C.POINTER(Named), C.c_int)
sig("dc_optim_adam", VP, C.POINTER(TP), C.c_int, C.c_double)
sig("dc_optim_step", C.c_int, VP)
sig("dc_optim_zero_grad", None, VP)
sig("dc_optim_free", None, VP)
sig("dc_cross_entropy_opt", TP, TP, TP, CEOpts)
sig("dc_backward_opt", C.c_int, TP, BwOpts)
sig("dc_item", C.c_double, TP)
sig("dc_scope_begin", None)
sig("dc_scope_end", None)


def load(path):
    m = raw.dc_onnx_load(path.encode())
    assert m, f"dc_onnx_load {path}: {err()}"
    return m


def torch_export(model, x, path, opset=17):
    import torch
    torch.onnx.export(model, x, path, input_names=["input"], output_names=["output"],
                      dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
                      opset_version=opset)


def test_import_torchvision():
    """What torch 1.13 writes for torchvision's ResNet-18/34 and VGG-11 gives PyTorch's outputs."""
    import torch
    import torchvision
    for name in ("resnet18", "resnet34", "vgg11"):
        torch.manual_seed(1)
        model = getattr(torchvision.models, name)().eval()
        x = torch.randn(2, 3, 224, 224)
        path = os.path.join(TMP, name + "_tv.onnx")
        torch_export(model, x, path)
        with torch.no_grad():
            want = model(x).numpy()
        m = load(path)
        try:
            raw.dc_module_train(m, False)
            prev = raw.dc_set_grad_enabled(False)
            got = to_np(raw.dc_module_forward(m, T(x.numpy())))
            raw.dc_set_grad_enabled(prev)
            scale = float(np.abs(want).max())
            diff = float(np.abs(got - want).max())
            print(f"  {name}: max |deepc - torch| = {diff:.3g} (scale {scale:.3g})")
            assert diff <= TOL * scale, f"{name}: {diff} > {TOL} * {scale}"
        finally:
            raw.dc_module_free(m)
            os.remove(path)


def test_import_roundtrip():
    """deepc's own exports read back give the same outputs (every op of the import table)."""
    specs = [("convs", (3, 17, 19), SPECS[0][2]), ("pools", (4, 24, 24), SPECS[1][2]),
             ("acts", (12,), SPECS[2][2]),
             ("flat", (2, 3, 4, 5), SPECS[3][2])]
    for name, one, spec in specs:
        m = raw.dc_nn_from_spec_opt(spec.encode(), SpecOpts(0, 0))
        assert m, f"{name}: {err()}"
        try:
            raw.dc_module_train(m, False)
            x = np.random.default_rng(5).standard_normal((2, *one)).astype(np.float32)
            want = to_np(raw.dc_module_forward(m, T(x)))
            path = export(m, one, name + "_rt")
        finally:
            raw.dc_module_free(m)
        g = load(path)
        try:
            raw.dc_module_train(g, False)
            got = to_np(raw.dc_module_forward(g, T(x)))
            diff = float(np.abs(got - want).max())
            assert diff <= TOL * float(np.abs(want).max()), f"{name}: round trip differs by {diff}"
        finally:
            raw.dc_module_free(g)


def test_import_torch_gelu():
    """torch's GELU exports (Erf; Pow and Tanh for the tanh form) read as deepc ops."""
    import torch
    torch.manual_seed(2)
    model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.GELU(), torch.nn.Linear(8, 8),
                                torch.nn.GELU(approximate="tanh"), torch.nn.Linear(8, 3)).eval()
    x = torch.randn(4, 6) * 3
    path = os.path.join(TMP, "gelu_torch.onnx")
    torch_export(model, x, path)
    ops = {n.op_type for n in onnx.load(path).graph.node}
    assert "Erf" in ops, ops
    with torch.no_grad():
        want = model(x).numpy()
    m = load(path)
    try:
        got = to_np(raw.dc_module_forward(m, T(x.numpy())))
        diff = float(np.abs(got - want).max())
        assert diff <= TOL * float(np.abs(want).max()), f"gelu import differs by {diff}"
    finally:
        raw.dc_module_free(m)


def test_finetune_resnet18():
    """An imported torchvision ResNet-18 trains: Adam on 8 generated images, the loss falls."""
    import torch
    import torchvision
    torch.manual_seed(2)
    path = os.path.join(TMP, "r18_ft.onnx")
    torch_export(torchvision.models.resnet18().eval(), torch.randn(1, 3, 64, 64), path)
    m = load(path)
    n = C.c_int()
    plist = raw.dc_module_parameters(m, C.byref(n))
    arr = (TP * n.value)(*[plist[i].tensor for i in range(n.value)])
    opt = raw.dc_optim_adam(arr, n.value, 1e-4)
    assert opt, err()
    rng = np.random.default_rng(3)
    x = rng.standard_normal((8, 3, 64, 64)).astype(np.float32)
    y = rng.integers(0, 5, size=8).astype(np.int64)
    losses = []
    try:
        raw.dc_module_train(m, True)
        for _ in range(10):
            raw.dc_scope_begin()
            out = raw.dc_module_forward(m, T(x))
            loss = raw.dc_cross_entropy_opt(out, T(y), CEOpts())
            assert loss, err()
            assert raw.dc_backward_opt(loss, BwOpts()) == 0, err()
            assert raw.dc_optim_step(opt) == 0, err()
            raw.dc_optim_zero_grad(opt)
            losses.append(raw.dc_item(loss))
            raw.dc_scope_end()
    finally:
        raw.dc_optim_free(opt)
        raw.dc_named_tensors_free(plist, n.value)
        raw.dc_module_free(m)
    print("  losses:", " ".join(f"{v:.3f}" for v in losses))
    assert n.value > 20, f"only {n.value} parameters: initializers must be trainable"
    assert losses[-1] < 0.5 * losses[0], f"the loss does not fall: {losses}"


def test_import_refusals():
    """An op deepc does not read is named with its node; a missing file is an I/O error."""
    import onnx.helper as h
    from onnx import TensorProto
    node = h.make_node("Cos", ["input"], ["output"], name="my_cos")
    g = h.make_graph([node], "g", [h.make_tensor_value_info("input", TensorProto.FLOAT, [1, 2])],
                     [h.make_tensor_value_info("output", TensorProto.FLOAT, [1, 2])])
    path = os.path.join(TMP, "cos.onnx")
    onnx.save(h.make_model(g, opset_imports=[h.make_opsetid("", 17)]), path)
    assert not raw.dc_onnx_load(path.encode())
    assert "my_cos" in err() and "'Cos'" in err(), err()
    assert not raw.dc_onnx_load(os.path.join(TMP, "none.onnx").encode())
    assert "none.onnx" in err(), err()


if __name__ == "__main__":
    try:
        run_tests(globals())
    finally:
        shutil.rmtree(TMP, ignore_errors=True)
