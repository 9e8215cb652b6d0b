"""PyTorch models as users ship them, through the SageMaker Python SDK v2 unchanged, on AWS's
`pytorch-inference` image URI, served by berth's Python runtime (no Docker image of that
reference exists here): a TorchScript `model.pt` with no script (the container's default
handler), and a state dict loaded by an `inference.py` `model_fn` that the SDK packs into the
archive's `code/`. S3 is the moto server. The expected outputs are computed by the environment
berth serves the image with (`berth prepare-python`), so they must agree to 1e-6.

torch from the package registry brings NVIDIA's CUDA libraries (about 5 GB installed): this
module's data directory, the environment with it, is removed when the module ends."""

import io
import json
import shutil
import subprocess
import tarfile
import textwrap

import numpy as np
import pytest

from conftest import ROLE, berth_binary, python_runtime_berth, sdk_session, unique, wait_status

sagemaker = pytest.importorskip("sagemaker")
if not sagemaker.__version__.startswith("2."):
    pytest.skip("this module drives SDK v2", allow_module_level=True)

from sagemaker import image_uris  # noqa: E402
from sagemaker.model import Model  # noqa: E402
from sagemaker.pytorch import PyTorchModel  # noqa: E402

FRAMEWORK_VERSION = "2.5"
PY_VERSION = "py311"
BUCKET = "berth-pytorch-runtime"

NET = """
    import torch

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.hidden = torch.nn.Linear(4, 8)
            self.out = torch.nn.Linear(8, 3)

        def forward(self, x):
            return torch.softmax(self.out(torch.relu(self.hidden(x))), dim=1)
"""

TRAIN = textwrap.dedent(NET) + textwrap.dedent(
    """
    import json, sys
    torch.manual_seed(3)
    net = Net().eval()
    torch.jit.trace(net, torch.rand(1, 4)).save(sys.argv[1] + "/model.pt")
    torch.save(net.state_dict(), sys.argv[1] + "/model.pth")
    rows = torch.rand(6, 4) * 5
    with torch.no_grad():
        out = net(rows)
    json.dump({"rows": rows.tolist(), "outputs": out.tolist()}, open(sys.argv[1] + "/expected.json", "w"))
    """
)


@pytest.fixture(scope="module")
def server(tmp_path_factory, s3_server):
    """A berth whose Python runtime is on, with the moto server as its S3."""
    yield from python_runtime_berth(tmp_path_factory, s3_server, "pytorch-runtime")


@pytest.fixture(scope="module")
def image():
    uri = image_uris.retrieve("pytorch", "us-east-1", version=FRAMEWORK_VERSION, py_version=PY_VERSION, instance_type="ml.m5.large", image_scope="inference")
    assert uri.endswith(f"/pytorch-inference:{FRAMEWORK_VERSION}-cpu-{PY_VERSION}"), uri
    return uri


@pytest.fixture(scope="module")
def trained(server, image, tmp_path_factory):
    """A TorchScript model, the same module's state dict, and its outputs on some rows."""
    # pip unpacks ~2.8 GB of wheels into a ~5 GB environment: a machine without the room cannot
    # run this module (it says so rather than failing on ENOSPC).
    free = shutil.disk_usage(server.data_dir).free
    if free < 10 * 1024**3:
        pytest.skip(f"{free / 1024**3:.1f} GB free where the torch environment goes; it needs about 10 GB")
    prepared = subprocess.run([berth_binary(), "prepare-python", "--data-dir", str(server.data_dir), "--image", image], capture_output=True, text=True)
    assert prepared.returncode == 0, prepared.stderr[-3000:]
    python = prepared.stdout.strip()
    d = tmp_path_factory.mktemp("pytorch-model")
    subprocess.run([python, "-c", TRAIN, str(d)], check=True)
    return d, json.loads((d / "expected.json").read_text())


@pytest.fixture(scope="module")
def session(server, s3_server):
    yield from sdk_session(server, s3_server, BUCKET)


def upload(session, tmp_path, files):
    """A model.tar.gz of `files` (names in the trained directory) in S3."""
    archive = tmp_path / unique("model")
    with tarfile.open(archive, "w:gz") as tar:
        for path in files:
            tar.add(path, arcname=path.name)
    key = f"models/{unique('torch')}/model.tar.gz"
    session.boto_session.client("s3").upload_file(str(archive), BUCKET, key)
    return f"s3://{BUCKET}/{key}"


def deploy(server, model, prefix):
    """Deploys `model` on one instance and waits until its endpoint is InService or Failed;
    returns the endpoint's name, the SDK's predictor and DescribeEndpoint's answer."""
    name = unique(prefix)
    predictor = model.deploy(initial_instance_count=1, instance_type="ml.m5.large", endpoint_name=name, wait=False)
    return name, predictor, wait_status(server.sm(), name, timeout=900)


def close(got, want):
    return np.abs(np.asarray(got, dtype=float) - np.asarray(want, dtype=float)).max() < 1e-6


def test_torchscript_with_no_script_uses_the_containers_default_handler(server, session, trained, image, tmp_path):
    d, expected = trained
    model = Model(image_uri=image, model_data=upload(session, tmp_path, [d / "model.pt"]), role=ROLE, sagemaker_session=session)
    name, _, described = deploy(server, model, "ts")
    assert described["EndpointStatus"] == "InService", described.get("FailureReason")
    runtime = server.runtime()
    # JSON in, JSON out (the default Accept).
    answer = runtime.invoke_endpoint(EndpointName=name, Body=json.dumps(expected["rows"]), ContentType="application/json")
    assert answer["ContentType"] == "application/json"
    assert close(json.loads(answer["Body"].read()), expected["outputs"])
    # CSV in; the first type of the Accept list the encoder writes, here CSV.
    csv = "\n".join(",".join(str(v) for v in row) for row in expected["rows"])
    answer = runtime.invoke_endpoint(EndpointName=name, Body=csv, ContentType="text/csv", Accept="application/xml, text/csv")
    assert answer["ContentType"] == "text/csv"
    assert close(np.loadtxt(io.StringIO(answer["Body"].read().decode()), delimiter=","), expected["outputs"])
    # NPY in (float32, as from_numpy takes it), NPY out.
    body = io.BytesIO()
    np.save(body, np.array(expected["rows"], dtype=np.float32))
    answer = runtime.invoke_endpoint(EndpointName=name, Body=body.getvalue(), ContentType="application/x-npy", Accept="application/x-npy")
    assert close(np.load(io.BytesIO(answer["Body"].read())), expected["outputs"])
    # What it cannot write is a 4xx ModelError naming the type.
    with pytest.raises(Exception) as e:
        runtime.invoke_endpoint(EndpointName=name, Body=json.dumps(expected["rows"]), ContentType="application/json", Accept="image/png")
    assert "ModelError" in str(e.value) and "406" in str(e.value) and "image/png" in str(e.value), e.value


def test_a_state_dict_through_the_handlers_model_fn(server, session, trained, tmp_path):
    """PyTorchModel with an entry point, as users write it: the SDK packs inference.py into the
    archive's code/ and the runtime finds it there."""
    d, expected = trained
    source = tmp_path / "src"
    source.mkdir()
    (source / "inference.py").write_text(
        textwrap.dedent(NET)
        + textwrap.dedent(
            """
            import os

            def model_fn(model_dir):
                net = Net()
                net.load_state_dict(torch.load(os.path.join(model_dir, "model.pth"), weights_only=True))
                return net
            """
        )
    )
    model = PyTorchModel(
        model_data=upload(session, tmp_path, [d / "model.pth"]),
        role=ROLE,
        entry_point="inference.py",
        source_dir=str(source),
        framework_version=FRAMEWORK_VERSION,
        py_version=PY_VERSION,
        sagemaker_session=session,
    )
    _, predictor, described = deploy(server, model, "sd")
    assert described["EndpointStatus"] == "InService", described.get("FailureReason")
    assert described["ProductionVariants"][0]["DeployedImages"][0]["SpecifiedImage"].endswith(f"pytorch-inference:{FRAMEWORK_VERSION}-cpu-{PY_VERSION}")
    # PyTorchPredictor's defaults: NumPy in, NumPy out.
    assert close(predictor.predict(np.array(expected["rows"], dtype=np.float32)), expected["outputs"])


def test_a_model_archive_without_a_model_file_fails_the_endpoint_naming_why(server, session, trained, image, tmp_path):
    d, _ = trained
    model = Model(image_uri=image, model_data=upload(session, tmp_path, [d / "expected.json"]), role=ROLE, sagemaker_session=session)
    _, _, described = deploy(server, model, "tsnone")
    assert described["EndpointStatus"] == "Failed"
    assert "Exactly one .pth or .pt file is required for PyTorch models: []" in described["FailureReason"], described["FailureReason"]
