#!/usr/bin/env python3
"""Writes the same iris LogisticRegression as model.joblib (for MLServer) and model.onnx (for
berth/onnx) into the directory given; used by bench/onnx_vs_mlserver.sh."""

import pathlib
import sys

import joblib
import numpy as np
from skl2onnx import to_onnx
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

out = pathlib.Path(sys.argv[1])
out.mkdir(parents=True, exist_ok=True)
X, y = load_iris(return_X_y=True)
X = X.astype(np.float32)
model = LogisticRegression(max_iter=1000).fit(X, y)
joblib.dump(model, out / "model.joblib")
onx = to_onnx(model, X[:1], options={id(model): {"zipmap": False}}, target_opset=17)
(out / "model.onnx").write_bytes(onx.SerializeToString())
