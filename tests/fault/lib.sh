# Set-up shared by the fault tests' shell scripts (sourced): $DEEPC, $PY, a temporary folder
# $tmp removed on exit, fail() counting $failures, and a small synthetic 3-class dataset with a
# config for `deepc train` on it.
DEEPC="${DEEPC_BUILD:?set DEEPC_BUILD to the build directory}/deepc"
PY=${DC_PYTHON:-/usr/bin/python3}
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
export OMP_NUM_THREADS=1

# write_npz NTRAIN NTEST: $tmp/train.npz and $tmp/test.npz, x [n, 16] float32, y [n] int64
write_npz() {
  "$PY" - "$tmp" "$1" "$2" <<'PYEOF'
import sys, numpy as np
r = np.random.default_rng(1)
for name, n in (("train", int(sys.argv[2])), ("test", int(sys.argv[3]))):
    y = r.integers(0, 3, n).astype(np.int64)
    x = (r.standard_normal((n, 16)) + y[:, None]).astype(np.float32)
    np.savez(f"{sys.argv[1]}/{name}.npz", x=x, y=y)
PYEOF
}

# mlp_config FILE EPOCHS: an MLP on those files ([optim] and extra [train] keys appended by
# the caller)
mlp_config() {
  cat >"$1" <<INI
[model]
arch = mlp
hidden = 16
batchnorm = false
[data]
dataset = $tmp/train.npz
test = $tmp/test.npz
val_split = 0.1
workers = 0
[train]
epochs = $2
batch_size = 20
INI
}
