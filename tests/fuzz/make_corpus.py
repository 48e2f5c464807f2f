"""Writes the fuzz targets' seed corpora (run with Debian's /usr/bin/python3; the outputs are
checked in): small torch.save files (a layer stack's state dict, views and shared storages,
every dtype, a nested training checkpoint with optimizer state, pickle protocol 4), their
data.pkl pickles, and safetensors files laid out as the reference writer does."""
import io
import json
import os
import struct
import zipfile

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
