#!/usr/bin/env python3
"""Regenerates the two iris models `berth serve --demo` deploys (crates/berth/demo/*.onnx).

Run with the test virtualenv's python (scikit-learn and skl2onnx): .venv/bin/python tools/gen_demo_models.py
"""

import pathlib

import numpy as np
from skl2onnx import to_onnx
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

OUT = pathlib.Path(__file__).resolve().parents[1] / "crates" / "berth" / "demo"
X, y = load_iris(return_X_y=True)
X = X.astype(np.float32)
models = {
    "iris-logistic.onnx": LogisticRegression(max_iter=1000),
    "iris-forest.onnx": RandomForestClassifier(n_estimators=10, max_depth=4, random_state=0),
}
for name, model in models.items():
    model.fit(X, y)
    onx = to_onnx(model, X[:1], options={id(model): {"zipmap": False}}, target_opset=17)
    (OUT / name).write_bytes(onx.SerializeToString())
    print(f"{name}: {(OUT / name).stat().st_size} bytes, training accuracy {model.score(X, y):.3f}")
