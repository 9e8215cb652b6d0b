"""berth's Python runtime: one worker process of the `berth/python` image, following the
SageMaker inference toolkit's handler contract (model_fn, input_fn, predict_fn, output_fn or
transform_fn, each falling back to the framework container's default).

Started by `berth worker python serve` with the model loaded once per process; it reads batches
of requests from stdin and writes their answers to stdout, each batch a frame: a 4-byte
big-endian length and a JSON header ({"requests": [{"content_type", "accept", "length"}, ...]} or
{"answers": [{"status", "content_type", "length"}, ...]}), then a 4-byte big-endian length and the
bodies one after another. The first frame it writes says whether the model loaded
({"ready": true}) or why not ({"error": traceback}). Where predict_fn is the framework's default,
the rows of a batch's requests are predicted in one call (row by row the same answers, far fewer
calls); anything else is handled request by request.
"""

import importlib
import importlib.util
import io
import json
import os
import struct
import sys
import traceback

JSON = "application/json"
CSV = "text/csv"
NPY = "application/x-npy"
LIBSVM = "text/libsvm"
UTF8_TYPES = (JSON, CSV)


class UnsupportedFormatError(Exception):
    """A content type or accept the handler cannot handle: a 415 (or 406) to the caller."""

    def __init__(self, content_type, status=415):
        super().__init__(f"Content type {content_type} is not supported by this model's handler")
        self.status = status


def base_type(content_type):
    return (content_type or "").split(";")[0].strip().lower()


# ---- the inference toolkit's codecs (numpy only; allow_pickle stays off) --------------------


def decode(data, content_type):
    import numpy as np

    kind = base_type(content_type)
    if kind == JSON:
        return np.array(json.loads(data))
    if kind == CSV:
        rows = [line for line in data.splitlines() if line.strip()]
        return np.array([[float(v) for v in line.split(",")] for line in rows])
    if kind == NPY:
        return np.load(io.BytesIO(data), allow_pickle=False)
    raise UnsupportedFormatError(content_type)


def encode(prediction, accept):
    import numpy as np

    kind = base_type(accept)
    if kind == JSON:
        return json.dumps(prediction, default=lambda x: x.tolist() if hasattr(x, "tolist") else str(x))
    if kind == CSV:
        stream = io.StringIO()
        array = np.asarray(prediction)
        np.savetxt(stream, array.reshape(-1, 1) if array.ndim < 2 else array, delimiter=",", fmt="%s")
        return stream.getvalue()
    if kind == NPY:
        stream = io.BytesIO()
        np.save(stream, np.asarray(prediction), allow_pickle=False)
        return stream.getvalue()
    raise UnsupportedFormatError(accept, status=406)


# ---- framework defaults ---------------------------------------------------------------------


def sklearn_model_fn(model_dir):
    """scikit-learn: model.joblib, else the only .joblib, .pkl or .pickle file."""
    import joblib

    path = os.path.join(model_dir, "model.joblib")
    if not os.path.exists(path):
        found = sorted(f for f in os.listdir(model_dir) if f.endswith((".joblib", ".pkl", ".pickle")))
        if len(found) != 1:
            raise FileNotFoundError(
                f"no model_fn in the handler and no model.joblib in the model data ({model_dir} holds {sorted(os.listdir(model_dir))[:20]})"
            )
        path = os.path.join(model_dir, found[0])
    return joblib.load(path)


def sklearn_input_fn(data, content_type):
    array = decode(data, content_type)
    return array.astype("float32") if base_type(content_type) in UTF8_TYPES else array


def xgboost_model_fn(model_dir):
    """XGBoost: xgboost-model (a saved Booster, JSON, UBJSON or binary), else the only file."""
    import xgboost as xgb

    path = os.path.join(model_dir, "xgboost-model")
    if not os.path.exists(path):
        files = [f for f in os.listdir(model_dir) if os.path.isfile(os.path.join(model_dir, f)) and not f.startswith(".")]
        if len(files) != 1:
            raise FileNotFoundError(f"no xgboost-model in the model data ({model_dir} holds {sorted(os.listdir(model_dir))[:20]})")
        path = os.path.join(model_dir, files[0])
    booster = xgb.Booster()
    booster.load_model(path)
    return booster


def xgboost_input_fn(data, content_type):
    import numpy as np
    import xgboost as xgb

    kind = base_type(content_type)
    if kind == LIBSVM:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        rows, cols, values, n_rows = [], [], [], 0
        for line in text.splitlines():
            parts = line.split()
            if not parts:
                continue
            for item in parts[1:] if ":" not in parts[0] else parts:
                index, value = item.split(":")
                rows.append(n_rows)
                cols.append(int(index))
                values.append(float(value))
            n_rows += 1
        import scipy.sparse

        return xgb.DMatrix(scipy.sparse.csr_matrix((values, (rows, cols)), shape=(n_rows, max(cols) + 1 if cols else 0)))
    array = decode(data, content_type)
    return xgb.DMatrix(np.atleast_2d(array))


def xgboost_predict_fn(data, booster):
    return booster.predict(data, validate_features=False)


def xgboost_output_fn(prediction, accept):
    """AWS's XGBoost container: CSV is one value per line; JSON {"predictions": [{"score": x}]}."""
    import numpy as np

    kind = base_type(accept)
    array = np.asarray(prediction)
    if kind == CSV:
        return "\n".join(",".join(str(v) for v in np.atleast_1d(row)) for row in array) + "\n"
    if kind == JSON:
        return json.dumps({"predictions": [{"score": row.tolist() if hasattr(row, "tolist") else row} for row in array]})
    return encode(prediction, accept)


def pytorch_model_fn(model_dir):
    """PyTorch: a TorchScript model.pt, else the only .pt or .pth file (a state dict needs the
    handler's own model_fn, which knows the module's class)."""
    import torch

    path = os.path.join(model_dir, "model.pt")
    if not os.path.exists(path):
        found = sorted(f for f in os.listdir(model_dir) if f.endswith((".pt", ".pth")) and os.path.isfile(os.path.join(model_dir, f)))
        if len(found) != 1:
            raise ValueError(f"Exactly one .pth or .pt file is required for PyTorch models: {found}")
        path = os.path.join(model_dir, found[0])
    try:
        return torch.jit.load(path, map_location=torch.device("cpu"))
    except RuntimeError as e:
        raise RuntimeError(
            f"Failed to load {path}. Please ensure model is saved using torchscript "
            f"(or give the handler a model_fn that builds the module and loads its state dict): {e}"
        ) from e


def pytorch_input_fn(data, content_type):
    import torch

    array = decode(data, content_type)
    return torch.FloatTensor(array) if base_type(content_type) in UTF8_TYPES else torch.from_numpy(array)


def pytorch_predict_fn(data, model):
    import torch

    with torch.no_grad():
        model.eval()
        return model(data)


def pytorch_output_fn(prediction, accept):
    """The first type of a comma-separated Accept that the encoder knows, as the toolkit's."""
    import torch

    if isinstance(prediction, torch.Tensor):
        prediction = prediction.detach().cpu().numpy().tolist()
    for kind in (accept or JSON).replace(" ", "").split(","):
        if base_type(kind) in (JSON, CSV, NPY):
            return encode(prediction, kind), base_type(kind)
    raise UnsupportedFormatError(accept, status=406)


def default_predict_fn(data, model):
    return model.predict(data)


def default_output_fn(prediction, accept):
    return encode(prediction, accept)


DEFAULTS = {
    "sklearn": (sklearn_model_fn, sklearn_input_fn, default_predict_fn, default_output_fn),
    "xgboost": (xgboost_model_fn, xgboost_input_fn, xgboost_predict_fn, xgboost_output_fn),
    "pytorch": (pytorch_model_fn, pytorch_input_fn, pytorch_predict_fn, pytorch_output_fn),
    "python": (None, decode, default_predict_fn, default_output_fn),
}


# ---- the handler ----------------------------------------------------------------------------


def load_handlers(framework, code_dir, program, module_name=None):
    """The handler functions; `module_name` loads the script under a name of its own (each
    model of a multi-model instance has its own `inference.py`)."""
    model_fn, input_fn, predict_fn, output_fn = DEFAULTS[framework]
    transform_fn = None
    if program:
        name = program[:-3] if program.endswith(".py") else program
        if not code_dir or not os.path.exists(os.path.join(code_dir, name + ".py")):
            raise FileNotFoundError(f"SAGEMAKER_PROGRAM {program} is not in the source directory ({code_dir or 'none given'})")
        sys.path.insert(0, code_dir)
        if module_name:
            spec = importlib.util.spec_from_file_location(module_name, os.path.join(code_dir, name + ".py"))
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        else:
            module = importlib.import_module(name)
        model_fn = getattr(module, "model_fn", model_fn)
        transform_fn = getattr(module, "transform_fn", None)
        custom = [getattr(module, f, None) for f in ("input_fn", "predict_fn", "output_fn")]
        if transform_fn and any(custom):
            raise ValueError("Cannot use transform_fn implementation with input_fn, predict_fn, and/or output_fn")
        input_fn, predict_fn, output_fn = (c or d for c, d in zip(custom, (input_fn, predict_fn, output_fn)))
    if model_fn is None:
        raise ValueError("Please provide a model_fn implementation (berth/python has no default model loader)")
    return model_fn, transform_fn, input_fn, predict_fn, output_fn


def read_exact(stream, n):
    data = stream.read(n)
    if len(data) != n:
        raise EOFError
    return data


def read_frame(stream):
    (size,) = struct.unpack(">I", read_exact(stream, 4))
    header = json.loads(read_exact(stream, size))
    (size,) = struct.unpack(">I", read_exact(stream, 4))
    return header, read_exact(stream, size)


def write_frame(stream, header, body=b""):
    if isinstance(body, str):
        body = body.encode("utf-8")
    head = json.dumps(header).encode()
    stream.write(struct.pack(">I", len(head)) + head + struct.pack(">I", len(body)) + bytes(body))
    stream.flush()


class Handlers:
    def __init__(self, framework, model_dir, code_dir=None, program=None, module_name=None):
        if module_name is None:
            code_dir, program = os.environ.get("BERTH_CODE_DIR"), os.environ.get("SAGEMAKER_PROGRAM")
            # No source directory given: the model archive's code/, as the inference toolkit finds it.
            if not code_dir and os.path.isdir(os.path.join(model_dir, "code")):
                code_dir = os.path.join(model_dir, "code")
        functions = load_handlers(framework, code_dir, program, module_name)
        self.model_fn, self.transform_fn, self.input_fn, self.predict_fn, self.output_fn = functions
        # Rows are predicted independently by the frameworks' own predict: batches may be joined.
        self.joinable = self.transform_fn is None and self.predict_fn is default_predict_fn
        self.model = self.model_fn(model_dir)

    def answer(self, result, accept):
        if isinstance(result, tuple):
            result, accept = result[0], result[1]
        return 200, accept, result

    def one(self, data, content_type, accept):
        """One request, as the toolkit's transformer handles it; errors become answers."""
        try:
            if self.transform_fn:
                return self.answer(self.transform_fn(self.model, data, content_type, accept), accept)
            return self.answer(self.output_fn(self.predict_fn(self.input_fn(data, content_type), self.model), accept), accept)
        except UnsupportedFormatError as e:
            return e.status, "text/plain", str(e)
        except Exception as e:  # noqa: the handler's failure is the caller's ModelError
            sys.stderr.write(traceback.format_exc())
            sys.stderr.flush()
            return 500, "text/plain", f"{type(e).__name__}: {e}"

    def batch(self, items):
        """items: (data, content_type, accept) per request; answers in the same order."""
        if not self.joinable or len(items) == 1:
            return [self.one(*item) for item in items]
        import numpy as np

        answers = [None] * len(items)
        groups = {}
        for i, (data, content_type, accept) in enumerate(items):
            try:
                rows = self.input_fn(data, content_type)
            except Exception:  # noqa: answered on its own below, with its error
                answers[i] = self.one(data, content_type, accept)
                continue
            if isinstance(rows, np.ndarray) and rows.ndim == 2:
                groups.setdefault((rows.shape[1], rows.dtype.str), []).append((i, rows))
            else:
                answers[i] = self.one(data, content_type, accept)
        for members in groups.values():
            try:
                predictions = self.predict_fn(np.vstack([rows for _, rows in members]), self.model)
                if len(predictions) != sum(len(rows) for _, rows in members):
                    raise ValueError("not one prediction per row")
            except Exception:  # noqa: each request then answers for itself
                for i, _ in members:
                    answers[i] = self.one(*items[i])
                continue
            start = 0
            for i, rows in members:
                part = predictions[start : start + len(rows)]
                start += len(rows)
                try:
                    answers[i] = self.answer(self.output_fn(part, items[i][2]), items[i][2])
                except UnsupportedFormatError as e:
                    answers[i] = (e.status, "text/plain", str(e))
                except Exception:  # noqa: as above
                    answers[i] = self.one(*items[i])
        return answers


def load_model(framework, name, url):
    """A model of a multi-model instance: its archive unpacked at `url`, its handler script in
    the archive's `code/` (SAGEMAKER_PROGRAM, else `inference.py` when there is one)."""
    code_dir = os.path.join(url, "code")
    program = os.environ.get("SAGEMAKER_PROGRAM") or ("inference.py" if os.path.exists(os.path.join(code_dir, "inference.py")) else None)
    return Handlers(framework, url, code_dir if os.path.isdir(code_dir) else None, program, module_name=f"berth_model_{name}")


def main():
    # The protocol owns the real stdout; what handlers print goes to the log (stderr).
    protocol_out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    protocol_in = sys.stdin.buffer
    framework = os.environ.get("BERTH_FRAMEWORK", "python")
    model_dir = os.environ.get("SM_MODEL_DIR", "/opt/ml/model")
    default_accept = os.environ.get("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT", JSON)
    multi_model = os.environ.get("SAGEMAKER_MULTI_MODEL") == "true"
    models = {}  # multi-model: name -> Handlers
    try:
        handlers = None if multi_model else Handlers(framework, model_dir)
    except BaseException:  # noqa: the reason goes to berth, which fails the endpoint with it
        write_frame(protocol_out, {"error": traceback.format_exc()})
        return 1
    write_frame(protocol_out, {"ready": True})
    while True:
        try:
            header, body = read_frame(protocol_in)
        except EOFError:
            return 0
        if "load" in header:
            name, url = header["load"]["name"], header["load"]["url"]
            try:
                models[name] = load_model(framework, name, url)
                write_frame(protocol_out, {"loaded": name})
            except BaseException:  # noqa: the reason is the load's answer
                write_frame(protocol_out, {"error": traceback.format_exc()})
            continue
        if "unload" in header:
            models.pop(header["unload"], None)
            write_frame(protocol_out, {"unloaded": header["unload"]})
            continue
        items, offset = [], 0
        for request in header["requests"]:
            part = body[offset : offset + request["length"]]
            offset += request["length"]
            content_type = request.get("content_type") or JSON
            accept = request.get("accept") or default_accept
            if accept == "*/*":
                accept = default_accept
            data = part.decode("utf-8") if base_type(content_type) in UTF8_TYPES else part
            items.append((data, content_type, accept))
        answers, bodies = [], []
        if multi_model:
            # Each request names its model; a model's handlers answer its requests one by one.
            results = []
            for request, item in zip(header["requests"], items):
                model = models.get(request.get("model"))
                results.append(model.one(*item) if model else (404, "text/plain", f"Model {request.get('model')} is not loaded"))
        else:
            results = handlers.batch(items)
        for status, content_type, result in results:
            data = result.encode("utf-8") if isinstance(result, str) else bytes(result)
            answers.append({"status": status, "content_type": content_type, "length": len(data)})
            bodies.append(data)
        write_frame(protocol_out, {"answers": answers}, b"".join(bodies))


if __name__ == "__main__":
    sys.exit(main())
