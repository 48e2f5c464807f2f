"""Writes the fuzz targets' seed corpora (run with Debian's /usr/bin/python3; the outputs are
checked in): small torch.save files (a layer stack's state dict, views and shared storages,
every dtype, a nested training checkpoint with optimizer state, pickle protocol 4), their
data.pkl pickles, safetensors files laid out as the reference writer does, and small valid files
of every dataset reader (IDX, CIFAR, npy/npz, NumPy pickles, CSV, PNG/JPEG/PNM), deepc
checkpoints, zip archives, `deepc train` configurations and layer specs."""
import gzip
import io
import json
import os
import pickle
import struct
import zipfile

import numpy as np
from PIL import Image

import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))


def out(kind, name, data):
    d = os.path.join(HERE, "corpus", kind)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def saved(obj, proto=2):
    b = io.BytesIO()
    torch.save(obj, b, pickle_protocol=proto)
    return b.getvalue()


def pickle_of(pth):
    z = zipfile.ZipFile(io.BytesIO(pth))
    return next(z.read(n) for n in z.namelist() if n.endswith("/data.pkl"))


torch.manual_seed(0)
net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU(), nn.Flatten(), nn.Linear(8, 3))
base = torch.arange(16.0).reshape(4, 4)
views = {"base": base, "t": base.t(), "slice": base[1:3, ::2], "row": base[3], "scalar": torch.tensor(2.0),
         "expanded": torch.arange(3.0).expand(2, 3), "empty": torch.zeros(0, 2)}
dtypes = {str(dt): torch.ones(2, dtype=dt) for dt in
          (torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int8, torch.int16,
           torch.int32, torch.int64, torch.uint8, torch.bool, torch.complex64)}
opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
net(torch.randn(2, 1, 4, 4)).sum().backward()
opt.step()
ckpt = {"epoch": 2, "lr": 0.05, "tag": "x", "model": net.state_dict(), "optim": opt.state_dict()}

files = {"net.pth": saved(net.state_dict()), "views.pth": saved(views), "dtypes.pth": saved(dtypes),
         "ckpt.pth": saved(ckpt), "net_proto4.pth": saved(net.state_dict(), 4)}
for name, data in files.items():
    out("pth", name, data)

# Pickles for fuzz_pickle.c, whose archive provides float storages "0" (16 elements) and "1" (4):
# every tensor views one of those two.
s0, s1 = torch.arange(16.0), torch.arange(1.0, 5.0)
sd = net.state_dict().__class__()
sd["conv.weight"] = s0[:9].view(1, 1, 3, 3)
sd["conv.bias"] = s0[9:10]
sd["fc.weight"] = s0.view(4, 4).t()
sd["fc.bias"] = s1
sd["bn.num_batches_tracked"] = s0[15]
sd._metadata = {"": {"version": 1}, "bn": {"version": 2}}
ck = {"epoch": 3, "lr": [0.1, 0.01], "best": None, "model": sd,
      "optim": {"state": {0: {"momentum_buffer": s1[1:3]}}, "param_groups": [{"lr": 0.1, "params": [0, 1]}]}}
for name, obj in {"state_dict.pkl": sd, "checkpoint.pkl": ck, "views.pkl": {"a": s0[2:14:3], "b": s1}}.items():
    for proto in (2, 4):
        out("pickle", name.replace(".pkl", f"_p{proto}.pkl"), pickle_of(saved(obj, proto)))

codes = {torch.float32: "F32", torch.float64: "F64", torch.float16: "F16", torch.bfloat16: "BF16",
         torch.int8: "I8", torch.int16: "I16", torch.int32: "I32", torch.int64: "I64",
         torch.uint8: "U8", torch.bool: "BOOL"}


def safetensors(tensors, meta=None):
    items = sorted(tensors.items(), key=lambda kv: (-kv[1].element_size(), kv[0]))
    header, blobs, off = ({"__metadata__": meta} if meta else {}), [], 0
    for k, t in items:
        t = t.contiguous()
        b = (t.view(torch.int16) if t.dtype == torch.bfloat16 else t).numpy().tobytes()
        header[k] = {"dtype": codes[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


out("safetensors", "net.safetensors", safetensors(dict(net.state_dict()), {"format": "pt"}))
out("safetensors", "dtypes.safetensors", safetensors({k: v for k, v in dtypes.items() if "complex" not in k}))
out("safetensors", "views.safetensors", safetensors(views))
out("safetensors", "empty.safetensors", safetensors({}))


# ---- deepc checkpoints (safetensors layout, "model.*" names, string metadata)
out("ckpt", "net.ckpt", safetensors({"model." + k: v for k, v in net.state_dict().items()},
                                    {"format": "deepc-checkpoint", "epoch": "2"}))
out("ckpt", "trainer.ckpt", safetensors({"trainer.step": torch.tensor([5]), "optim.0.momentum": torch.ones(3),
                                        "model.w": torch.arange(6.0).reshape(2, 3)}, {"config": "[train]\nepochs = 2\n"}))
out("ckpt", "empty.ckpt", safetensors({}, {"format": "deepc-checkpoint"}))

# ---- zip archives: .pth files and .npz files (stored and deflated)
out("zip", "net.pth", files["net.pth"])


def npz(arrays, compressed):
    b = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(b, **arrays)
    return b.getvalue()


rng = np.random.default_rng(0)
x = rng.integers(0, 255, size=(3, 4, 4), dtype=np.uint8)
y = np.array([0, 2, 1], dtype=np.int64)
out("zip", "xy.npz", npz({"x": x, "y": y}, False))
out("zip", "xy_deflated.npz", npz({"x": x, "y": y}, True))

# ---- IDX (MNIST's format): uint8 images and labels, gzip, int16 / float32 / float64 data
def idx(a, code):
    a = np.ascontiguousarray(a)
    return bytes([0, 0, code, a.ndim]) + b"".join(struct.pack(">I", d) for d in a.shape) + a.astype(a.dtype.newbyteorder(">")).tobytes()


out("idx", "images.idx", idx(x, 0x08))
out("idx", "labels.idx", idx(y.astype(np.uint8), 0x08))
out("idx", "images.idx.gz", gzip.compress(idx(x, 0x08), mtime=0))
out("idx", "int16.idx", idx(np.arange(-3, 3, dtype=np.int16).reshape(2, 3), 0x0B))
out("idx", "int32.idx", idx(np.arange(4, dtype=np.int32), 0x0C))
out("idx", "float32.idx", idx(np.linspace(0, 1, 6, dtype=np.float32).reshape(3, 2), 0x0D))
out("idx", "float64.idx", idx(np.linspace(0, 1, 4, dtype=np.float64), 0x0E))
out("idx", "int8.idx", idx(np.arange(-2, 2, dtype=np.int8), 0x09))

# ---- CIFAR binary batches: the first byte of a fuzz input picks the file name fuzz_cifar.c
# writes (0: data_batch_1.bin, 2: train.bin = CIFAR-100), so the label doubles as that choice
px = rng.integers(0, 255, size=(2, 3072), dtype=np.uint8)
out("cifar", "cifar10.bin", b"".join(bytes([k * 4]) + px[k].tobytes() for k in range(2)))
out("cifar", "cifar100.bin", b"".join(bytes([2 + 4 * k, 7]) + px[k].tobytes() for k in range(2)))

# ---- .npy (and the .npz above through the same target)
def npy(a, version=None):
    b = io.BytesIO()
    if version:
        np.lib.format.write_array(b, a, version=version)
    else:
        np.save(b, a)
    return b.getvalue()


out("npy", "f4.npy", npy(np.arange(6, dtype=np.float32).reshape(2, 3)))
out("npy", "be_i8.npy", npy(np.arange(4, dtype=">i8")))
out("npy", "fortran.npy", npy(np.asfortranarray(np.arange(6, dtype=np.float64).reshape(2, 3))))
out("npy", "bool.npy", npy(np.array([True, False])))
out("npy", "u2_v2.npy", npy(np.arange(3, dtype=np.uint16), (2, 0)))
out("npy", "scalar.npy", npy(np.float32(3.5)))
out("npy", "empty.npy", npy(np.zeros((0, 3), dtype=np.uint8)))
out("npy", "xy.npz", npz({"x": x, "y": y}, False))
out("npy", "xy_deflated.npz", npz({"x": x, "y": y}, True))

# ---- NumPy pickles (dc_pickle_loads), CIFAR's Python batch layout among them
batch = {b"batch_label": b"training batch 1 of 5", b"labels": [3, 1],
         b"data": rng.integers(0, 255, size=(2, 3072), dtype=np.uint8), b"filenames": [b"a.png", b"b.png"]}
for proto in (2, 4, 5):
    out("pydata", f"cifar_batch_p{proto}.pkl", pickle.dumps(batch, protocol=proto))
    out("pydata", f"xy_p{proto}.pkl", pickle.dumps((np.arange(6, dtype=np.float32).reshape(3, 2), np.array([0, 1, 0])), protocol=proto))
out("pydata", "containers_p2.pkl", pickle.dumps({"a": [1, 2.5, None, True, "s", b"b", (1,), {"k": -7}],
                                               "big": 2 ** 70, "neg": -2 ** 40}, protocol=2))
out("pydata", "dtypes_p4.pkl", pickle.dumps([np.array([1, 2], dtype=t) for t in
                                            ("<i2", ">f8", "u1", "?", "<u4", "<f2")], protocol=4))
out("pydata", "memo_p2.pkl", pickle.dumps([[1, 2]] * 3, protocol=2))

# ---- CSV (dc_csv_dataset, dc_history_read_csv)
out("csv", "iris.csv", b"sepal_length,sepal_width,species\n5.1,3.5,setosa\n4.9,3.0,setosa\n6.3,3.3,virginica\n")
out("csv", "quoted.csv", b'\xef\xbb\xbf"a","b,c",label\r\n1,"2",0\r\n3,4,1\r\n')
out("csv", "semicolon.csv", b"x;y;target\n1e3;-2.5;1.5\n;3;0\n")
out("csv", "metrics.csv", b"epoch,train_loss,train_acc,val_loss,val_acc,lr,seconds\n1,0.5,0.8,0.6,0.79,0.1,3.5\n2,0.4,0.85,,,0.1,3.4\n")

# ---- images: PNG (gray, RGB, palette, 16-bit, alpha, interlaced), JPEG (baseline, progressive,
# gray, CMYK), PPM/PGM
img = Image.fromarray(rng.integers(0, 255, size=(6, 5, 3), dtype=np.uint8))


def saved_img(im, fmt, **kw):
    b = io.BytesIO()
    im.save(b, fmt, **kw)
    return b.getvalue()


out("image", "rgb.png", saved_img(img, "PNG"))
out("image", "gray.png", saved_img(img.convert("L"), "PNG"))
out("image", "palette.png", saved_img(img.convert("P"), "PNG"))
out("image", "rgba.png", saved_img(img.convert("RGBA"), "PNG"))
out("image", "gray16.png", saved_img(Image.fromarray(np.arange(30, dtype=np.uint16).reshape(5, 6) * 1000), "PNG"))
out("image", "gray_alpha.png", saved_img(img.convert("LA"), "PNG"))
out("image", "baseline.jpg", saved_img(img, "JPEG", quality=90))
out("image", "progressive.jpg", saved_img(img, "JPEG", progressive=True))
out("image", "gray.jpg", saved_img(img.convert("L"), "JPEG"))
out("image", "cmyk.jpg", saved_img(img.convert("CMYK"), "JPEG"))
out("image", "rgb.ppm", saved_img(img, "PPM"))
out("image", "gray.pgm", saved_img(img.convert("L"), "PPM"))

# ---- configurations and layer specs (one target reads both)
root = os.path.dirname(os.path.dirname(HERE))
for name in sorted(os.listdir(os.path.join(root, "configs"))):
    with open(os.path.join(root, "configs", name), "rb") as f:
        out("config", name, f.read())
out("config", "vars.ini", b"[vars]\nw = 64\nd = ${w}\n[model]\narch = mlp\nhidden = ${w}, ${d}\n"
                         b"[optim]\nname = sgd\nlr = 0.1\nmomentum = 0.9\n  # continuation\n")
out("config", "layers.ini", b"[model]\nlayers = conv2d(1, 8, 3, padding=1), relu, maxpool2d(2),\n"
                           b"  flatten, linear(8*14*14, classes)\n[train]\nepochs = 1\n")
out("config", "spec_cnn.txt", b"conv2d(1, 32, 5, padding=2), batchnorm2d(32), relu, maxpool2d(2), "
                             b"flatten, dropout(0.3), linear(6272, 10)")
out("config", "spec_mlp.txt", b"Flatten(), Linear(784, 64, bias=False), ReLU(inplace=True), Linear(64, classes), LogSoftmax(dim=1)")
out("config", "spec_pool.txt", b"conv2d(3, 4, (3, 5), stride=(1, 2), padding='same'), avgpool2d(2, ceil_mode=True), "
                              b"adaptiveavgpool2d((1, None)), hardtanh(-1.5, 2)")

# ---- ONNX models (the importer, fuzz_onnx): what deepc's exporter and torch.onnx write
import onnx  # noqa: E402  (Debian python3-onnx)
from onnx import TensorProto as OTP, helper as oh  # noqa: E402


def onnx_of(nodes, inits, in_shape, opset=17):
    g = oh.make_graph(nodes, "g", [oh.make_tensor_value_info("x", OTP.FLOAT, ["N", *in_shape])],
                      [oh.make_tensor_value_info("y", OTP.FLOAT, None)], initializer=inits)
    return oh.make_model(g, opset_imports=[oh.make_opsetid("", opset)]).SerializeToString()


def ot(name, a):
    a = np.asarray(a, dtype=np.float32)
    return oh.make_tensor(name, OTP.FLOAT, a.shape, a.tobytes(), raw=True)


r = np.random.default_rng(4)
out("onnx", "mlp.onnx", onnx_of(
    [oh.make_node("Gemm", ["x", "w", "b"], ["h"], transB=1), oh.make_node("Relu", ["h"], ["r"]),
     oh.make_node("Softmax", ["r"], ["y"], axis=1)],
    [ot("w", r.standard_normal((3, 4))), ot("b", r.standard_normal(3))], [4]))
out("onnx", "cnn.onnx", onnx_of(
    [oh.make_node("Conv", ["x", "cw", "cb"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
     oh.make_node("BatchNormalization", ["c", "s", "o", "m", "v"], ["n"], epsilon=1e-5),
     oh.make_node("LeakyRelu", ["n"], ["a"], alpha=0.1),
     oh.make_node("MaxPool", ["a"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
     oh.make_node("AveragePool", ["p"], ["q"], kernel_shape=[2, 2], strides=[1, 1]),
     oh.make_node("GlobalAveragePool", ["q"], ["g"]), oh.make_node("Flatten", ["g"], ["f"], axis=1),
     oh.make_node("Reshape", ["f", "shape"], ["y"])],
    [ot("cw", r.standard_normal((2, 1, 3, 3))), ot("cb", r.standard_normal(2)), ot("s", [1, 2]),
     ot("o", [0, 1]), ot("m", [0.1, 0.2]), ot("v", [1, 2]),
     oh.make_tensor("shape", OTP.INT64, [2], [0, -1])], [1, 6, 6]))
out("onnx", "ops.onnx", onnx_of(
    [oh.make_node("Clip", ["x", "lo", "hi"], ["c"]), oh.make_node("Add", ["c", "x"], ["a"]),
     oh.make_node("Mul", ["a", "x"], ["m"]), oh.make_node("Sigmoid", ["m"], ["s"]),
     oh.make_node("Identity", ["s"], ["i"]), oh.make_node("Dropout", ["i"], ["d"]),
     oh.make_node("LogSoftmax", ["d"], ["y"], axis=-1)],
    [ot("lo", -1.0), ot("hi", 1.0)], [5]))
tiny = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8, 2)).eval()
buf = io.BytesIO()
torch.onnx.export(tiny, torch.randn(1, 1, 4, 4), buf, input_names=["x"], output_names=["y"],
                  dynamic_axes={"x": {0: "N"}, "y": {0: "N"}}, opset_version=13)
out("onnx", "torch.onnx", buf.getvalue())
