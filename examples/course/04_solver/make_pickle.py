"""Exercise 4: writes a binary (features, targets) pickle like the course's data.pkl (1000
samples, split 500/250/250 by the solver) from real data: scikit-learn's handwritten digits
(digits.csv.gz from Debian's python3-sklearn: 1797 8x8 images, 64 features 0..16), target 1 for
the digits 5-9 and 0 for 0-4, rows shuffled with seed 0 and the first 1000 kept, as NumPy arrays
(float64 [1000, 64], int64 [1000]).
usage: /usr/bin/python3 make_pickle.py OUT.pkl [CSV.gz]"""
import pickle
import sys

import numpy as np

out = sys.argv[1]
csv = sys.argv[2] if len(sys.argv) > 2 else \
    "/usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz"
rows = np.loadtxt(csv, delimiter=",")
rows = rows[np.random.default_rng(0).permutation(len(rows))][:1000]
x, y = rows[:, :-1].astype(np.float64), (rows[:, -1] >= 5).astype(np.int64)
with open(out, "wb") as f:
    pickle.dump((x, y), f, protocol=4)
print(f"{out}: features {x.shape}, targets {y.shape}, class counts {np.bincount(y).tolist()}")
