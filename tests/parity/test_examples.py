"""PyTorch parity of the worked example examples/bce_2_500_2.c: the example dumps its inputs,
weights, loss and gradients (--dump DIR); PyTorch recomputes the same 2-500-2 network (tanh
hidden, sigmoid output, F.binary_cross_entropy) from those weights and the gradients must match.
The example binary sits in <build>/examples next to libdeepc.so (DEEPC_LIB)."""
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(__file__))
from dc import _lib_path, check_close, run_tests  # noqa: E402

EXAMPLE = os.path.join(os.path.dirname(os.path.abspath(_lib_path)), "examples", "bce_2_500_2")
PARAMS = ("W1", "b1", "W2", "b2")


def run_example(*args):
    d = tempfile.mkdtemp(prefix="deepc-bce-")
    res = subprocess.run([EXAMPLE, "--dump", d, *args], capture_output=True, text=True)
    assert res.returncode == 0, f"{EXAMPLE} failed: {res.stdout}{res.stderr}"
    arrays = {f[:-4]: np.load(os.path.join(d, f)) for f in os.listdir(d)}
    for f in os.listdir(d):
        os.remove(os.path.join(d, f))
    os.rmdir(d)
    return arrays, res.stdout


def torch_grads(a):
    p = {k: torch.tensor(a[k], requires_grad=True) for k in PARAMS}
    x, t = torch.tensor(a["x"]), torch.tensor(a["t"])
    h = torch.tanh(F.linear(x, p["W1"], p["b1"]))
    y = torch.sigmoid(F.linear(h, p["W2"], p["b2"]))
    loss = F.binary_cross_entropy(y, t)
    loss.backward()
    return loss.detach().numpy(), {k: v.grad.numpy() for k, v in p.items()}


def compare(a, rtol, atol):
    loss, grads = torch_grads(a)
    check_close("loss", a["loss"], loss, rtol=rtol, atol=atol)
    for k in PARAMS:
        check_close(k + ".grad", a[k + "_grad"], grads[k], rtol=rtol, atol=atol)


def test_bce_float64_matches_torch():
    a, _ = run_example()
    assert a["x"].dtype == np.float64 and a["W1"].shape == (500, 2) and a["W2"].shape == (2, 500)
    assert a["x"].shape == (16, 2) and a["t"].shape == (16, 2)
    compare(a, rtol=1e-10, atol=1e-13)


def test_bce_other_seed_and_batch():
    a, _ = run_example("--seed", "3", "--batch", "33")
    assert a["x"].shape == (33, 2)
    compare(a, rtol=1e-10, atol=1e-13)


def test_bce_float32_matches_torch():
    a, _ = run_example("--float32", "--seed", "1")
    assert a["W1"].dtype == np.float32 and a["W1_grad"].dtype == np.float32
    compare(a, rtol=1e-4, atol=1e-6)


def test_targets_follow_the_rule():
    a, _ = run_example()
    x, t = a["x"], a["t"]
    np.testing.assert_array_equal(t[:, 0], (x[:, 0] > 0).astype(t.dtype))
    np.testing.assert_array_equal(t[:, 1], (x[:, 0] * x[:, 1] > 0).astype(t.dtype))


def test_init_follows_nn_linear_bounds():
    a, _ = run_example()
    assert np.abs(a["W1"]).max() <= 1 / np.sqrt(2) and np.abs(a["b1"]).max() <= 1 / np.sqrt(2)
    assert np.abs(a["W2"]).max() <= 1 / np.sqrt(500) and np.abs(a["b2"]).max() <= 1 / np.sqrt(500)
    assert a["W1"].std() > 0.3  # U(-0.707, 0.707) has std 0.41


def test_printed_loss_matches_dump():
    a, out = run_example()
    line = [ln for ln in out.splitlines() if ln.startswith("loss ")][0]
    check_close("printed loss", float(line.split()[1]), a["loss"], rtol=1e-11)


run_tests(globals())
