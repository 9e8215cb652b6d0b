#!/usr/bin/env python3
"""Regenerates the demo's traffic (crates/berth/demo/iris-traffic.csv): iris flowers measured
again with an unsteady hand — every feature a little noisy, petal width much more so — and their
true species. The random forest leans on petal width and suffers; the logistic regression holds
up, so the demo's A/B test has a real winner (about 88% against 72% accuracy on these rows).

Run with the test virtualenv's python: .venv/bin/python tools/gen_demo_traffic.py
"""

import pathlib

import numpy as np
import onnxruntime as ort
from sklearn.datasets import load_iris

DEMO = pathlib.Path(__file__).resolve().parents[1] / "crates" / "berth" / "demo"
ROWS = 600

X, y = load_iris(return_X_y=True)
rng = np.random.default_rng(2026)
picked = rng.integers(0, len(X), ROWS)
noise = rng.normal(size=(ROWS, 4)) * X.std(axis=0) * np.array([0.3, 0.3, 0.3, 1.0])
rows = np.round(np.clip(X[picked] + noise, 0.1, None), 2).astype(np.float32)
labels = y[picked]
with open(DEMO / "iris-traffic.csv", "w") as out:
    out.write("# sepal length, sepal width, petal length, petal width, species (0 setosa, 1 versicolor, 2 virginica); tools/gen_demo_traffic.py\n")
    for row, label in zip(rows, labels):
        out.write(",".join(f"{v:g}" for v in row) + f",{label}\n")
for name in ("logistic", "forest"):
    session = ort.InferenceSession(str(DEMO / f"iris-{name}.onnx"))
    predicted = session.run(None, {"X": rows})[0]
    print(f"iris-{name}.onnx: accuracy {np.mean(predicted == labels):.3f} on {ROWS} rows")
