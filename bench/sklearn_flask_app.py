"""The stack AWS's scikit-learn serving container runs (sagemaker-containers' worker: Flask under
gunicorn), reduced to what an invocation does there: the inference toolkit's default handlers —
decode by content type (CSV through np.genfromtxt, JSON, NPY), text as float32, model.predict,
encode by Accept (JSON by default). For bench/python_runtime.sh; MODEL_PATH names the model."""

import io
import json
import os

import flask
import joblib
import numpy as np

app = flask.Flask(__name__)
model = joblib.load(os.environ["MODEL_PATH"])


def decode(body, content_type):
    if content_type == "text/csv":
        return np.genfromtxt(io.StringIO(body.decode()), delimiter=",", ndmin=2).astype(np.float32)
    if content_type == "application/json":
        return np.array(json.loads(body)).astype(np.float32)
    if content_type == "application/x-npy":
        return np.load(io.BytesIO(body), allow_pickle=False)
    flask.abort(415)


@app.route("/ping")
def ping():
    return ""


@app.route("/invocations", methods=["POST"])
def invocations():
    data = decode(flask.request.get_data(), flask.request.content_type)
    prediction = model.predict(data)
    return flask.Response(json.dumps(prediction.tolist()), mimetype="application/json")
