"""Who may call berth: SigV4 on every AWS protocol berth serves (checked with real boto3 clients:
right keys, wrong secret, unknown key, unsigned, a skewed clock), HTTP basic auth on berth's own
routes, the berth CLI with the standard credential chain, TLS with boto3, the AWS CLI and the
berth CLI against a certificate made here, and the refusal to serve a network address openly."""

import datetime
import os
import subprocess

import botocore
import botocore.auth
import pytest
import requests
from botocore.config import Config
from botocore.exceptions import ClientError

from conftest import berth_binary, cloudwatch_client, error_code, http_status

KEY, SECRET = "AKIDBERTHTEST", "s3cr3t/with+chars"
OTHER_KEY, OTHER_SECRET = "AKIDSECOND", "second-secret"


@pytest.fixture
def credentials_file(tmp_path):
    path = tmp_path / "credentials"
    path.write_text(
        f"[default]\naws_access_key_id = {KEY}\naws_secret_access_key = {SECRET}\n\n"
        f"[profile ci]\naws_access_key_id={OTHER_KEY}\naws_secret_access_key={OTHER_SECRET}\n"
    )
    path.chmod(0o600)
    return path


@pytest.fixture
def signed_berth(own_berth, credentials_file):
    return own_berth("--auth", "sigv4", "--credentials-file", str(credentials_file))


def client(server, service, key=KEY, secret=SECRET, **config):
    cfg = Config(retries={"max_attempts": 1, "mode": "standard"}, **config)
    import boto3

    return boto3.client(
        service, endpoint_url=server.url, region_name="us-east-1", aws_access_key_id=key, aws_secret_access_key=secret, config=cfg
    )


def calls(server, tmp_path, monkeypatch, **creds):
    """One call per AWS protocol berth serves, each with the given credentials/config."""
    creds = {"access_key_id": KEY, "secret_access_key": SECRET, **creds}
    renamed = {f"aws_{k}" if k in ("access_key_id", "secret_access_key") else k: v for k, v in creds.items()}
    cw = {p: cloudwatch_client(server, p, tmp_path / p, monkeypatch, **renamed) for p in ("smithy-rpc-v2-cbor", "json", "query")}
    key = creds.get("access_key_id", KEY)
    secret = creds.get("secret_access_key", SECRET)
    extra = {k: v for k, v in creds.items() if k not in ("access_key_id", "secret_access_key")}
    sm = client(server, "sagemaker", key, secret, **extra)
    rt = client(server, "sagemaker-runtime", key, secret, **extra)
    aas = client(server, "application-autoscaling", key, secret, **extra)
    return {
        "sagemaker": lambda: sm.list_endpoints(),
        "runtime": lambda: rt.invoke_endpoint(EndpointName="no-such-endpoint", Body=b"1"),
        "cloudwatch-cbor": lambda: cw["smithy-rpc-v2-cbor"].list_metrics(),
        "cloudwatch-json": lambda: cw["json"].list_metrics(),
        "cloudwatch-query": lambda: cw["query"].list_metrics(),
        "autoscaling": lambda: aas.describe_scalable_targets(ServiceNamespace="sagemaker"),
    }


def outcome(call):
    try:
        call()
        return "ok", 200, ""
    except ClientError as e:
        return error_code_of(e), e.response["ResponseMetadata"]["HTTPStatusCode"], e.response["Error"].get("Message", "")


def error_code_of(e):
    return e.response["Error"]["Code"]


# What each protocol's parser reports for each failure (CloudWatch is query-compatible: botocore
# reports its query-protocol codes whichever protocol carried them).
JSON_CODES = {"unknown": "UnrecognizedClientException", "wrong": "InvalidSignatureException", "unsigned": "MissingAuthenticationTokenException"}
QUERY_CODES = {"unknown": "InvalidClientTokenId", "wrong": "SignatureDoesNotMatch", "unsigned": "MissingAuthenticationToken"}


def expected(protocol, failure):
    return (QUERY_CODES if protocol.startswith("cloudwatch") else JSON_CODES)[failure]


def test_sigv4_on_every_protocol(signed_berth, tmp_path, monkeypatch):
    # The right keys (either profile's) pass on every protocol; the runtime then answers that the
    # endpoint does not exist, which it can only say once the signature passed.
    for key, secret in ((KEY, SECRET), (OTHER_KEY, OTHER_SECRET)):
        for name, call in calls(signed_berth, tmp_path / key, monkeypatch, access_key_id=key, secret_access_key=secret).items():
            code, status, _ = outcome(call)
            if name == "runtime":
                assert (code, status) == ("ValidationError", 400), (name, code)
            else:
                assert code == "ok", (name, code)

    cases = {
        "wrong": dict(access_key_id=KEY, secret_access_key="not-the-secret"),
        "unknown": dict(access_key_id="AKIDUNKNOWN", secret_access_key=SECRET),
        "unsigned": dict(signature_version=botocore.UNSIGNED),
    }
    for failure, creds in cases.items():
        for name, call in calls(signed_berth, tmp_path / failure, monkeypatch, **creds).items():
            code, status, _ = outcome(call)
            assert (code, status) == (expected(name, failure), 403), (failure, name, code, status)

    # Nothing refused reached the controller.
    sm = client(signed_berth, "sagemaker")
    assert sm.list_endpoints()["Endpoints"] == []


def test_a_clock_off_by_more_than_15_minutes_is_refused(signed_berth, tmp_path, monkeypatch):
    real = botocore.auth.get_current_datetime
    for skew, ok in ((datetime.timedelta(minutes=-20), False), (datetime.timedelta(minutes=20), False), (datetime.timedelta(minutes=10), True)):
        monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda s=skew: real() + s)
        for name, call in calls(signed_berth, tmp_path / str(skew.total_seconds()), monkeypatch).items():
            code, status, message = outcome(call)
            if ok:
                assert code in ("ok", "ValidationError"), (name, code)
            else:
                assert status == 403 and code in ("InvalidSignatureException", "SignatureDoesNotMatch"), (name, code)
                assert message.startswith("Signature expired" if skew.total_seconds() < 0 else "Signature not yet current"), message


def test_a_tampered_request_is_refused(signed_berth):
    """A signed request whose body was changed on the way: the body's hash is part of the signature."""
    sm = client(signed_berth, "sagemaker")

    def tamper(request, **_):
        assert "Authorization" in request.headers, "signed before it is changed"
        request.body = request.body.replace(b"MaxResults", b"MaxResultz")

    sm.meta.events.register("before-send.sagemaker.ListEndpoints", tamper)
    with pytest.raises(ClientError) as e:
        sm.list_endpoints(MaxResults=5)
    assert error_code(e) == "InvalidSignatureException" and http_status(e) == 403


def test_basic_auth_on_berths_own_routes(signed_berth):
    for path in ("/metrics", "/ui", "/ui/assets/dashboard.js", "/berth/v1/overview", "/berth/v1/events"):
        r = requests.get(signed_berth.url + path, timeout=10)
        assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Basic realm="), path
        assert requests.get(signed_berth.url + path, auth=(KEY, "wrong"), timeout=10).status_code == 401, path
        assert requests.get(signed_berth.url + path, auth=("AKIDUNKNOWN", SECRET), timeout=10).status_code == 401, path
        assert requests.get(signed_berth.url + path, auth=(KEY, SECRET), timeout=10).status_code == 200, path
    r = requests.post(signed_berth.url + "/berth/v1/endpoints/x/ground-truth", data=b"{}", timeout=10)
    assert r.status_code == 401
    assert requests.get(signed_berth.url + "/healthz", timeout=10).status_code == 200, "health checks stay open"


def test_the_berth_cli_signs_with_the_standard_credential_chain(signed_berth, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    run = lambda *args, **e: subprocess.run(  # noqa: E731
        [berth_binary(), *args, "--url", signed_berth.url], env={**env, **e}, capture_output=True, text=True, timeout=60
    )
    ok = run("endpoints", AWS_ACCESS_KEY_ID=KEY, AWS_SECRET_ACCESS_KEY=SECRET)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("ENDPOINT")
    events = run("events", AWS_ACCESS_KEY_ID=KEY, AWS_SECRET_ACCESS_KEY=SECRET)
    assert events.returncode == 0, events.stderr
    bad = run("endpoints", AWS_ACCESS_KEY_ID=KEY, AWS_SECRET_ACCESS_KEY="wrong")
    assert bad.returncode != 0 and "InvalidSignatureException" in bad.stderr
    # The shared credentials file and a named profile, as the AWS CLI reads them.
    creds = tmp_path / "aws-credentials"
    creds.write_text(f"[ops]\naws_access_key_id = {OTHER_KEY}\naws_secret_access_key = {OTHER_SECRET}\n")
    profile = run("endpoints", AWS_SHARED_CREDENTIALS_FILE=str(creds), AWS_PROFILE="ops", AWS_CONFIG_FILE=str(tmp_path / "none"))
    assert profile.returncode == 0, profile.stderr


def test_the_berth_cli_never_sends_the_secret_key(signed_berth, tmp_path):
    """Against a server that records what it is sent (as anything at --url could), every command
    sends a SigV4 signature and never the secret key, nor a basic Authorization header; against
    berth, the commands that read berth's own routes (events, logs, ab) are let in by it."""
    import socket
    import threading

    received = []
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)

    def record():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                data = b""
                try:
                    while b"\r\n\r\n" not in data:
                        chunk = conn.recv(65536)
                        if not chunk:
                            break
                        data += chunk
                except OSError:
                    pass
                received.append(data)
                conn.sendall(b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}")

    threading.Thread(target=record, daemon=True).start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ACCESS_KEY_ID=KEY, AWS_SECRET_ACCESS_KEY=SECRET)
    spy = f"http://127.0.0.1:{listener.getsockname()[1]}"
    for command in (["events"], ["logs", "ep"], ["ab", "ep", "--variants", "A", "B"], ["endpoints"]):
        subprocess.run([berth_binary(), *command, "--url", spy], env=env, capture_output=True, timeout=60)
    listener.close()
    assert received, "the commands sent nothing"
    for request in received:
        head = request.decode(errors="replace")
        assert SECRET not in head and SECRET.replace("/", "%2F") not in head, head
        assert "Basic " not in head, head
        assert "AWS4-HMAC-SHA256 Credential=" + KEY in head, head
    assert any("GET /berth/v1/events" in r.decode() for r in received)

    run = lambda *args: subprocess.run([berth_binary(), *args, "--url", signed_berth.url], env=env, capture_output=True, text=True, timeout=60)  # noqa: E731
    for command in (["events"], ["logs", "no-such-endpoint"]):
        done = run(*command)
        assert "UnrecognizedClient" not in done.stderr and "401" not in done.stderr, (command, done.stderr)
    assert run("events").returncode == 0


def test_runtime_headers_that_change_a_call_must_be_signed(signed_berth):
    """A signed invocation with a header added after signing (TargetVariant, CustomAttributes,
    the content type) is refused: each changes what the call does, and AWS's SDKs sign them."""
    import botocore.awsrequest
    import botocore.credentials

    url = f"{signed_berth.url}/endpoints/no-such-endpoint/invocations"
    request = botocore.awsrequest.AWSRequest(method="POST", url=url, data=b"1,2", headers={"Content-Type": "text/csv"})
    botocore.auth.SigV4Auth(botocore.credentials.Credentials(KEY, SECRET), "sagemaker", "us-east-1").add_auth(request)
    signed = dict(request.headers.items())
    r = requests.post(url, data=b"1,2", headers=signed, timeout=10)
    assert r.headers.get("x-amzn-ErrorType", "").startswith("ValidationError"), r.text  # signed as it was: let in
    for name, value in (("X-Amzn-SageMaker-Target-Variant", "Variant2"), ("X-Amzn-SageMaker-Custom-Attributes", "user=eve")):
        r = requests.post(url, data=b"1,2", headers={**signed, name: value}, timeout=10)
        assert r.status_code == 403 and name.lower() in r.text.lower(), (name, r.status_code, r.text)
    # Signed with no Content-Type, sent with one.
    bare = botocore.awsrequest.AWSRequest(method="POST", url=url, data=b"1,2")
    botocore.auth.SigV4Auth(botocore.credentials.Credentials(KEY, SECRET), "sagemaker", "us-east-1").add_auth(bare)
    headers = {k: v for k, v in bare.headers.items() if k.lower() != "content-type"}
    assert "content-type" not in headers["Authorization"]
    r = requests.post(url, data=b"1,2", headers={**headers, "Content-Type": "application/json"}, timeout=10)
    assert r.status_code == 403 and "content-type" in r.text.lower(), r.text


def test_a_network_address_needs_authentication_or_an_explicit_opt_out(tmp_path, credentials_file):
    args = [berth_binary(), "serve", "--listen", "0.0.0.0:0", "--data-dir", str(tmp_path / "d")]
    refused = subprocess.run(args, capture_output=True, text=True, timeout=30)
    assert refused.returncode != 0
    assert "without authentication" in refused.stderr and "--allow-unauthenticated" in refused.stderr
    # With authentication, or with the explicit opt-out (logged loudly), it starts.
    for extra in (["--auth", "sigv4", "--credentials-file", str(credentials_file)], ["--allow-unauthenticated"]):
        proc = subprocess.Popen([*args[:-1], str(tmp_path / f"d{len(extra)}"), *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            line = proc.stdout.readline().decode()
            assert line.startswith("berth listening on http://0.0.0.0:"), line
            port = int(line.rsplit(":", 1)[1])
            assert requests.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code == 200
        finally:
            proc.terminate()
            _, err = proc.communicate(timeout=30)
        if extra == ["--allow-unauthenticated"]:
            assert b"WITHOUT AUTHENTICATION" in err


def make_certificate(tmp_path):
    """A CA and a server certificate for 127.0.0.1 and localhost, made with `cryptography`."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    import ipaddress

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "berth test CA")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=2)).add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])).issuer_name(ca_name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = {name: tmp_path / f"{name}.pem" for name in ("ca", "cert", "key")}
    paths["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths["cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths["key"].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return paths


def test_tls_with_boto3_the_aws_cli_and_the_berth_cli(own_berth, tmp_path, credentials_file):
    pem = make_certificate(tmp_path)
    server = own_berth("--tls-cert", str(pem["cert"]), "--tls-key", str(pem["key"]), "--auth", "sigv4", "--credentials-file", str(credentials_file))
    assert server.url.startswith("https://127.0.0.1:")
    import boto3

    sm = boto3.client("sagemaker", endpoint_url=server.url, region_name="us-east-1", aws_access_key_id=KEY, aws_secret_access_key=SECRET, verify=str(pem["ca"]))
    assert sm.list_endpoints()["Endpoints"] == []
    untrusted = boto3.client("sagemaker", endpoint_url=server.url, region_name="us-east-1", aws_access_key_id=KEY, aws_secret_access_key=SECRET,
                             config=Config(retries={"max_attempts": 1}))
    with pytest.raises(botocore.exceptions.SSLError):
        untrusted.list_endpoints()
    # Plain HTTP to the TLS port gets nowhere.
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(server.url.replace("https://", "http://") + "/healthz", timeout=5)

    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ACCESS_KEY_ID=KEY, AWS_SECRET_ACCESS_KEY=SECRET, AWS_DEFAULT_REGION="us-east-1")
    aws = subprocess.run(
        ["aws", "sagemaker", "list-endpoints", "--endpoint-url", server.url, "--ca-bundle", str(pem["ca"])],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert aws.returncode == 0, aws.stderr
    assert '"Endpoints": []' in aws.stdout
    cli = subprocess.run([berth_binary(), "endpoints", "--url", server.url], env={**env, "AWS_CA_BUNDLE": str(pem["ca"])},
                         capture_output=True, text=True, timeout=60)
    assert cli.returncode == 0, cli.stderr
    assert cli.stdout.startswith("ENDPOINT")
