"""Exercise 4: writes a binary (features, targets) pickle like the course's data.pkl from real
data: scikit-learn's breast cancer CSV (569 samples, 30 features, 0 = malignant, 1 = benign),
rows shuffled with seed 0, as NumPy arrays (float64 [N, 30], int64 [N]).
usage: /usr/bin/python3 make_pickle.py OUT.pkl [CSV]"""
import pickle
import sys

import numpy as np

out = sys.argv[1]
csv = sys.argv[2] if len(sys.argv) > 2 else \
    "/usr/lib/python3/dist-packages/sklearn/datasets/data/breast_cancer.csv"
rows = np.loadtxt(csv, delimiter=",", skiprows=1)
rows = rows[np.random.default_rng(0).permutation(len(rows))]
x, y = rows[:, :-1].astype(np.float64), rows[:, -1].astype(np.int64)
with open(out, "wb") as f:
    pickle.dump((x, y), f, protocol=4)
print(f"{out}: features {x.shape}, targets {y.shape}, class counts {np.bincount(y).tolist()}")
