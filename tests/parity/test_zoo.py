"""PyTorch parity of the model zoo (include/deepc/zoo.h) through `deepc predict`.

torchvision's ResNet18/34/50 and VGG11 (random weights, batch-norm statistics randomised so eval
mode matters) and the course's networks (CIFAR VGGs of every depth, LeNet-5, the baseline CNN, an
MLP) are saved with torch.save; deepc loads the files strictly (every key name and shape must
match) and its eval outputs on the same inputs are compared with torch's: the max abs and
relative differences are printed, the target is 1e-4 relative to the largest output.
`deepc summary resnet34` reports torchvision's parameter count. Under DC_PARITY_DEVICE (dc.py)
the predictions run on that device (`--device`) and are recorded for compare_devices.py.
"""
import os
import re
import subprocess
import tempfile

import numpy as np
import torch
import torch.nn as nn
import torchvision

from dc import record, run_tests

SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
DEEPC = os.path.join(os.path.dirname(os.path.abspath(os.environ.get("DEEPC_LIB", "build/x"))), "deepc")
TMP = tempfile.mkdtemp(prefix="dc_zoo_parity_")
RTOL = 1e-4
DEVICE = os.environ.get("DC_PARITY_DEVICE", "cpu")


def randomise_bn(m):
    for mod in m.modules():
        if isinstance(mod, (nn.BatchNorm1d, nn.BatchNorm2d)):
            mod.running_mean.uniform_(-0.3, 0.3)
            mod.running_var.uniform_(0.5, 1.5)
            mod.weight.data.uniform_(0.5, 1.5)
            mod.bias.data.uniform_(-0.3, 0.3)
    return m.eval()


def check_model(name, model, x, extra=()):
    """Saves model's state dict, runs `deepc predict name`, compares with model(x)."""
    torch.manual_seed(0)
    randomise_bn(model)
    p, xp, yp = (os.path.join(TMP, f"{name}.{e}") for e in ("pth", "x.npy", "y.npy"))
    torch.save(model.state_dict(), p)
    np.save(xp, x.numpy())
    r = subprocess.run([DEEPC, "predict", name, "--weights", p, "--input", xp, "--output", yp,
                        "--device", DEVICE, *extra], capture_output=True, text=True)
    os.remove(p)
    assert r.returncode == 0, f"deepc predict {name}: {r.stderr}"
    with torch.no_grad():
        want = model(x).numpy()
    got = np.load(yp)
    record(got)
    assert got.shape == want.shape, (got.shape, want.shape)
    diff = np.abs(got.astype(np.float64) - want)
    rel = diff.max() / max(np.abs(want).max(), 1e-12)
    print(f"  {name:16s} in {tuple(x.shape)}: max |diff| {diff.max():.3g}, relative {rel:.3g}")
    assert rel < RTOL, f"{name}: relative difference {rel:.3g} above {RTOL}"


def test_torchvision_resnets():
    torch.manual_seed(1)
    for depth, n in ((18, 2), (34, 2), (50, 1)):
        m = getattr(torchvision.models, f"resnet{depth}")(num_classes=10)
        check_model(f"resnet{depth}", m, torch.randn(n, 3, 64, 64))


def test_torchvision_vgg11():
    torch.manual_seed(2)
    m = torchvision.models.vgg11(num_classes=10)
    check_model("vgg11", m, torch.randn(2, 3, 32, 32))  # 1x1 features, adaptive pool to 7x7


def cifar_vgg(cfg, bn, k=10):
    """The course's CIFAR VGG (torch_workloads.py: vgg11_cifar)."""
    layers, c = [], 3
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(2))
        else:
            layers += [nn.Conv2d(c, v, 3, padding=1)] + ([nn.BatchNorm2d(v)] if bn else []) + [nn.ReLU()]
            c = v
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(512, k))


CFGS = {11: [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
        13: [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
        16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
        19: [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512,
             512, 512, "M"]}


def test_cifar_vggs_every_depth():
    torch.manual_seed(3)
    for depth, cfg in CFGS.items():
        for bn in (False, True):
            name = f"vgg{depth}{'_bn' if bn else ''}_cifar"
            check_model(name, cifar_vgg(cfg, bn), torch.randn(2, 3, 32, 32))


def test_course_networks():
    torch.manual_seed(4)
    lenet = nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.Tanh(), nn.AvgPool2d(2),
                          nn.Conv2d(6, 16, 5), nn.Tanh(), nn.AvgPool2d(2), nn.Flatten(),
                          nn.Linear(400, 120), nn.Tanh(), nn.Linear(120, 84), nn.Tanh(),
                          nn.Linear(84, 10))
    check_model("lenet5", lenet, torch.randn(3, 1, 28, 28))
    cnn = nn.Sequential(
        nn.Conv2d(1, 32, 5, padding=2), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 32, 5, padding=2), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 5, padding=2), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Dropout(0.3), nn.Linear(64 * 3 * 3, 64), nn.BatchNorm1d(64), nn.ReLU(),
        nn.Linear(64, 10))
    check_model("cnn_fashion", cnn, torch.randn(4, 1, 28, 28))
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(1024, 256), nn.ReLU(), nn.Linear(256, 128),
                        nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10))
    check_model("mlp", mlp, torch.randn(5, 1, 32, 32))


def test_small_input_resnet_and_fine_tuned_head():
    torch.manual_seed(5)
    m = torchvision.models.resnet18(num_classes=2)  # a fine-tuned 2-class head
    m.conv1 = nn.Conv2d(1, 64, 3, 1, 1, bias=False)
    m.maxpool = nn.Identity()
    check_model("resnet18", m, torch.randn(2, 1, 28, 28), extra=["--small-input"])


def test_summary_resnet34_parameter_count():
    r = subprocess.run([DEEPC, "summary", "resnet34", "--input", "3x224x224"], capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    n = sum(p.numel() for p in torchvision.models.resnet34().parameters())
    assert n == 21797672
    assert f"Total params: {n:,}" in r.stdout, r.stdout[-600:]
    assert "layer4.2 (BasicBlock)" in r.stdout


def test_docs_finetune_example_compiles_and_runs():
    """The C example of docs/zoo.md loads a torchvision checkpoint into a 2-class ResNet-18."""
    doc = open(os.path.join(SRC, "docs", "zoo.md")).read()
    match = re.search(r"<!-- example: finetune -->\s*```c\n(.*?)```", doc, re.S)
    assert match, "docs/zoo.md lacks the finetune example block"
    lib = os.path.abspath(os.environ.get("DEEPC_LIB", os.path.join(SRC, "build", "libdeepc.so")))
    src, exe, pth = (os.path.join(TMP, n) for n in ("finetune.c", "finetune", "resnet18.pth"))
    with open(src, "w") as f:
        f.write(match.group(1))
    cc = subprocess.run(["cc", "-std=gnu11", "-Wall", "-Wextra", "-Werror", src, "-o", exe, "-I",
                         os.path.join(SRC, "include"), lib, "-Wl,-rpath," + os.path.dirname(lib),
                         "-lm"], capture_output=True, text=True)
    assert cc.returncode == 0, cc.stderr
    tv = torchvision.models.resnet18()
    torch.save(tv.state_dict(), pth)
    run = subprocess.run([exe, pth], capture_output=True, text=True, timeout=300)
    os.remove(pth)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "head fc left as initialised (fc.weight: file [1000, 512], model [2, 512])" in run.stdout, run.stdout
    frozen = ("conv1.", "bn1.", "layer1.")
    trainable = sum(p.numel() for n, p in tv.named_parameters() if not n.startswith(frozen + ("fc.",)))
    total = sum(p.numel() for n, p in tv.named_parameters() if not n.startswith("fc.")) + 2 * 512 + 2
    assert f"trainable: {trainable + 1026} of {total} parameters in 2 groups" in run.stdout, run.stdout
    losses = [float(v) for v in re.findall(r"step \d: loss ([0-9.]+)", run.stdout)]
    assert len(losses) == 2 and all(0 < v < 10 for v in losses), run.stdout


if __name__ == "__main__":
    run_tests(globals())
