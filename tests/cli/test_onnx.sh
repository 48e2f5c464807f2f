#!/usr/bin/env bash
# `deepc export` and ONNX models in the other commands: the help listing, a checkpoint of
# `deepc train` exported (class names in the metadata, the ONNX checker's full check) and
# scored by `deepc eval MODEL.onnx` exactly as the checkpoint, `deepc predict` of the file
# against the zoo model with the same weights, `deepc summary FILE.onnx`, fine-tuning with
# model.arch = onnx:FILE, and the errors of a bad opset and an unsupported layer.
set -euo pipefail
deepc=${DEEPC_BUILD:?}/deepc
src=${DEEPC_SRC:?}
source "$src/tests/common.sh"
py=/usr/bin/python3
has() { grep -qF -- "$2" <<<"$1" || fail "expected '$2' in:"$'\n'"$1"; }

has "$("$deepc" --help)" "export"
has "$("$deepc" help export)" "usage: deepc export CHECKPOINT|MODEL"

# a short run, its checkpoint exported and scored both ways
"$deepc" train "$src/configs/fashion_cnn.ini" --epochs 1 --set data.train_limit=512 \
  --set data.test_limit=256 --out "$tmp/run" --progress none >/dev/null
out=$("$deepc" export "$tmp/run/best.ckpt" "$tmp/cnn.onnx")
has "$out" "one input [1, 28, 28]"
"$py" - "$tmp/cnn.onnx" <<'PY' || fail "checker / metadata of the exported checkpoint"
import sys, onnx
m = onnx.load(sys.argv[1])
onnx.checker.check_model(m, full_check=True)
meta = {p.key: p.value for p in m.metadata_props}
assert meta["classes"].split("\n")[:2] == ["T-shirt/top", "Trouser"], meta
assert m.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
PY
a=$("$deepc" eval "$tmp/run/best.ckpt" --limit 300 | sed -n 2p)
b=$("$deepc" eval "$tmp/cnn.onnx" --data fashion-mnist --limit 300 | sed -n 2p)
[ "$a" = "$b" ] || fail "eval of the ONNX export differs from the checkpoint's: '$b' vs '$a'"
has "$("$deepc" summary "$tmp/cnn.onnx")" "OnnxGraph"

# the course MLP and CNN (configs/fashion_*.ini) in ONNX Runtime (node + npm onnxruntime-node,
# when present) give what deepc gives for their exports (which eval scores as the checkpoints)
ort=""
for d in "${DEEPC_ORT_DIR:-}" "$src/data/onnxruntime" /work/main/data/onnxruntime; do
  [ -n "$d" ] && [ -f "$d/node_modules/onnxruntime-node/package.json" ] && ort=$d/node_modules/onnxruntime-node && break
done
"$deepc" train "$src/configs/fashion_mlp.ini" --epochs 1 --set data.train_limit=256 \
  --set data.test_limit=64 --out "$tmp/mlprun" --progress none >/dev/null
"$deepc" export "$tmp/mlprun/last.ckpt" "$tmp/course_mlp.onnx" >/dev/null
if command -v node >/dev/null && [ -n "$ort" ]; then
  for m in cnn course_mlp; do
    "$py" -c "import numpy as np, sys; x = np.random.default_rng(1).standard_normal((4, 1, 28, 28)); \
np.save(sys.argv[1] + '.npy', x.astype(np.float32)); x.astype('<f4').tofile(sys.argv[1] + '.bin')" "$tmp/x_$m"
    "$deepc" predict "$tmp/$m.onnx" --input "$tmp/x_$m.npy" --output "$tmp/y_$m.npy" >/dev/null
    node "$src/tests/onnx/ort_run.js" "$ort" "$tmp/$m.onnx" "$tmp/x_$m.bin" 4,1,28,28 "$tmp/o_$m.bin" \
      >/dev/null || fail "onnxruntime on $m.onnx"
    "$py" -c "import numpy as np, sys; a = np.load(sys.argv[1]).ravel(); b = np.fromfile(sys.argv[2], '<f4'); \
assert a.shape == b.shape and np.abs(a - b).max() <= 1e-5 * np.abs(a).max(), np.abs(a - b).max()" \
      "$tmp/y_$m.npy" "$tmp/o_$m.bin" || fail "$m: onnxruntime differs from deepc"
  done
else
  echo "test_onnx: node or onnxruntime-node missing: the ONNX Runtime check is skipped"
fi

# predict: the zoo model with a weight file and its ONNX export give the same outputs
"$py" - "$tmp" <<'PY'
import sys, numpy as np, torch, torch.nn as nn
torch.manual_seed(0)
m = nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(),
                  nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10))
torch.save(m.state_dict(), sys.argv[1] + "/mlp.pth")
np.save(sys.argv[1] + "/x.npy", np.random.default_rng(0).standard_normal((5, 784)).astype(np.float32))
PY
"$deepc" export mlp --weights "$tmp/mlp.pth" "$tmp/mlp.onnx" >/dev/null
"$deepc" predict mlp --weights "$tmp/mlp.pth" --input "$tmp/x.npy" --output "$tmp/y1.npy" >/dev/null
"$deepc" predict "onnx:$tmp/mlp.onnx" --input "$tmp/x.npy" --output "$tmp/y2.npy" >/dev/null
"$py" -c "import numpy as np, sys; a, b = np.load(sys.argv[1]), np.load(sys.argv[2]); \
assert a.shape == (5, 10) and np.abs(a - b).max() <= 1e-5 * np.abs(a).max(), abs(a - b).max()" \
  "$tmp/y1.npy" "$tmp/y2.npy" || fail "predict of the ONNX export differs from the zoo model's"

# fine-tuning an imported graph from a configuration
"$deepc" train "$src/configs/fashion_cnn.ini" --epochs 2 --set "model.arch=onnx:$tmp/cnn.onnx" \
  --set data.train_limit=512 --set data.test_limit=256 --out "$tmp/ft" --progress none >/dev/null \
  || fail "training from model.arch = onnx:FILE"
"$py" - "$tmp/ft/metrics.csv" <<'PY' || fail "the fine-tuning loss does not fall"
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
assert float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"]), rows
PY

# a graph with another number of classes gets a fresh head; eval rebuilds it from the checkpoint
"$deepc" export cnn_fashion --classes 5 "$tmp/cnn5.onnx" >/dev/null
"$deepc" train "$src/configs/fashion_cnn.ini" --epochs 1 --set "model.arch=onnx:$tmp/cnn5.onnx" \
  --set data.train_limit=256 --set data.test_limit=64 --out "$tmp/ft5" --progress none >/dev/null \
  || fail "training a 5-class graph on 10 classes"
has "$("$deepc" eval "$tmp/ft5/best.ckpt" --limit 64)" "accuracy:"

# errors
err=$("$deepc" export mlp --opset 9 "$tmp/x.onnx" 2>&1) && fail "opset 9 accepted"
has "$err" "opset 9 is not supported"
err=$("$deepc" export mlp --input 0x3 "$tmp/x.onnx" 2>&1) && fail "bad --input accepted"
has "$err" "--input '0x3'"
[ -z "$(ls "$tmp" | grep "^x\.onnx")" ] || fail "a failed export left a file"
err=$("$deepc" predict "$tmp/nothere.onnx" --input "$tmp/x.npy" --output "$tmp/y.npy" 2>&1) \
  && fail "a missing ONNX file accepted"
has "$err" "nothere.onnx"

[ "$failures" -eq 0 ] || exit 1
echo "test_onnx: ok"
