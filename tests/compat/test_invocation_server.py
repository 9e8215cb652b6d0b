"""The invocation route's own HTTP/1.1 server, spoken to byte by byte: pipelined invocations, a
connection that turns to the control plane half way, heads split across writes, requests that
could be framed two ways (which must never reach a model framed the wrong way), slow bodies,
unfinished heads, and berth stopping under a connection."""

import json
import signal
import socket
import time

from conftest import deploy


def invocation(name, body=b"", headers=(), version="HTTP/1.1", length=True):
    lines = [f"POST /endpoints/{name}/invocations {version}", "Host: 127.0.0.1"]
    lines += list(headers)
    if length:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class Answers:
    """Reads HTTP/1.1 answers off a socket, one at a time, by their Content-Length or chunks."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("connection closed")
        self.buf += data

    def _line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _take(self, n):
        while len(self.buf) < n:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def next(self):
        status_line = self._line()
        status = int(status_line.split()[1])
        headers, lines = {}, [status_line]
        while line := self._line():
            lines.append(line)
            name, _, value = line.decode().partition(":")
            headers[name.strip().lower()] = value.strip()
        self.last_head = b"\r\n".join(lines)
        if headers.get("transfer-encoding") == "chunked":
            body = b""
            while size := int(self._line(), 16):
                body += self._take(size)
                self._line()
            self._line()
        else:
            body = self._take(int(headers.get("content-length", "0")))
        return status, headers, body

    def closed(self, timeout=10):
        """True when the peer closes the connection within `timeout` seconds with nothing more."""
        self.sock.settimeout(timeout)
        try:
            return self.buf == b"" and self.sock.recv(1024) == b""
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False


def connect(server, timeout=20):
    return socket.create_connection(("127.0.0.1", server.port), timeout=timeout)


def echoed(body):
    return json.loads(body)


def test_pipelined_invocations_then_the_control_plane_on_one_connection(berth, sm):
    name = deploy(sm, ["V"])
    control = b'{}'
    list_endpoints = (
        "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Amz-Target: SageMaker.ListEndpoints\r\n"
        f"Content-Type: application/x-amz-json-1.1\r\nContent-Length: {len(control)}\r\n\r\n"
    ).encode() + control
    with connect(berth) as s:
        answers = Answers(s)
        # Four requests in one write: two invocations (the second with its headers in other
        # cases), a control-plane call (from here on hyper serves the connection), an invocation.
        s.sendall(
            invocation(name, b"first")
            + invocation(name, b"second", ["CONTENT-TYPE: text/csv", "x-amzn-sagemaker-custom-attributes: user=7", "ACCEPT: application/json"])
            + list_endpoints
            + invocation(name, b"fourth", ["Content-Type: application/json"])
        )
        status, headers, body = answers.next()
        assert status == 200 and echoed(body)["body"] == "first"
        assert headers["x-amzn-invoked-production-variant"] == "V"
        assert headers["content-type"] == "application/json" and len(headers["x-amzn-requestid"]) == 36 and headers["date"].endswith("GMT")
        status, headers, body = answers.next()
        second = echoed(body)
        assert status == 200 and second["body"] == "second"
        assert (second["content_type"], second["accept"], second["custom_attributes"]) == ("text/csv", "application/json", "user=7")
        assert headers["x-amzn-sagemaker-custom-attributes"] == "echoed"
        status, _, body = answers.next()
        assert status == 200 and any(e["EndpointName"] == name for e in json.loads(body)["Endpoints"])
        status, _, body = answers.next()
        assert status == 200 and echoed(body)["body"] == "fourth"

    with connect(berth) as s:
        answers = Answers(s)
        # A head split across writes is read whole before anything is decided.
        raw = invocation(name, b"in pieces", ["Content-Type: text/plain"])
        for piece in (raw[:7], raw[7:30], raw[30:-4], raw[-4:]):
            s.sendall(piece)
            time.sleep(0.05)
        status, _, body = answers.next()
        assert status == 200 and echoed(body)["body"] == "in pieces"
        # Errors are answered in the runtime's shape on the same connection.
        s.sendall(invocation("no-such-endpoint", b"x") + invocation(name, b"x", ["X-Amzn-SageMaker-Target-Variant: Nope"]))
        status, headers, body = answers.next()
        assert status == 400 and "not found" in json.loads(body)["message"] and headers["x-amzn-errortype"].startswith("ValidationError")
        assert answers.last_head.lower().count(b"x-amzn-requestid") == 1
        status, _, body = answers.next()
        assert status == 400 and "Nope" in json.loads(body)["message"]
        # The gate's Host and Origin checks hold here too.
        s.sendall(invocation(name, b"x", ["Origin: http://evil.example"]))
        status, _, _ = answers.next()
        assert status == 403
        # `Connection: close` is honoured: the answer says so and the connection ends.
        s.sendall(invocation(name, b"last", ["Connection: close"]))
        status, headers, body = answers.next()
        assert status == 200 and headers["connection"] == "close" and echoed(body)["body"] == "last"
        assert answers.closed()


def test_requests_framed_two_ways_never_reach_a_model_framed_the_wrong_way(berth, sm):
    name = deploy(sm, ["V"])
    hidden = invocation(name, b"smuggled")

    # Transfer-Encoding beside a Content-Length: read by the length, what follows the chunk
    # terminator would be a second, smuggled request. hyper frames it by its chunks (an empty
    # body reaches the model) and, as RFC 9112 requires, closes the connection after answering:
    # the hidden request is never read.
    for framing in (
        ["Content-Length: 5", "Transfer-Encoding: chunked"],
        ["Transfer-Encoding: chunked", "Content-Length: 5"],
    ):
        with connect(berth) as s:
            answers = Answers(s)
            s.sendall(invocation(name, b"0\r\n\r\n" + hidden, framing, length=False))
            status, headers, body = answers.next()
            assert status == 200 and echoed(body)["body"] == "", (framing, status, body)
            assert headers["connection"] == "close"
            assert answers.closed(), "the connection must end after a request framed two ways"

    # Two lengths, or a length that is not plain digits: refused, and the connection ends.
    for lengths in (["Content-Length: 5", "Content-Length: 13"], ["Content-Length: +5"], ["Content-Length: 5, 5"]):
        with connect(berth) as s:
            answers = Answers(s)
            s.sendall(invocation(name, b"01234" + hidden, lengths, length=False))
            status, _, _ = answers.next()
            assert status == 400, lengths
            assert answers.closed(), lengths

    # What hyper frames well is served there, with the same answer: chunked, HTTP/1.0, a query.
    with connect(berth) as s:
        answers = Answers(s)
        s.sendall(invocation(name, b"5\r\nchunk\r\n0\r\n\r\n", ["Transfer-Encoding: chunked"], length=False))
        status, headers, body = answers.next()
        assert status == 200 and echoed(body)["body"] == "chunk" and headers["x-amzn-invoked-production-variant"] == "V"
        s.sendall(invocation(name, b"after"))
        status, _, body = answers.next()
        assert status == 200 and echoed(body)["body"] == "after"
    with connect(berth) as s:
        s.sendall(invocation(name, b"old", version="HTTP/1.0"))
        status, _, body = Answers(s).next()
        assert status == 200 and echoed(body)["body"] == "old"

    # A body past the runtime's limit, announced by its length: refused from the head alone, on
    # either server (HTTP/1.0 goes to hyper's) and on the routed path (a name to decode).
    encoded = name.replace("-", "%2D", 1)
    for path, version in ((name, "HTTP/1.1"), (name, "HTTP/1.0"), (encoded, "HTTP/1.1")):
        with connect(berth) as s:
            s.sendall(f"POST /endpoints/{path}/invocations {version}\r\nHost: 127.0.0.1\r\nContent-Length: {6 * 1024 * 1024 + 1}\r\n\r\n".encode())
            status, headers, body = Answers(s).next()
            assert status == 400 and headers["connection"] == "close" and "6 MB" in json.loads(body)["message"], (path, version)


def test_slow_bodies_unfinished_heads_and_stopping(own_berth):
    server = own_berth("--body-timeout", "1", "--header-timeout", "1", "--shutdown-timeout", "10")
    name = deploy(server.sm(), ["V"], env={"ECHO_DELAY_MS": "1500"})

    # A body that stops arriving is answered at the body timeout, in the runtime's shape.
    with connect(server) as s:
        s.sendall(f"POST /endpoints/{name}/invocations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n{{".encode())
        began = time.time()
        status, headers, _ = Answers(s).next()
        assert status == 408 and headers["connection"] == "close" and time.time() - began < 5

    # A head that never finishes is dropped at the header timeout.
    with connect(server) as s:
        s.sendall(f"POST /endpoints/{name}/invocations HTTP/1.1\r\nHost: 127.0.0.1\r\n".encode())
        began = time.time()
        assert Answers(s).closed(timeout=10) and time.time() - began < 5

    # berth stopping: an idle keep-alive connection is closed, a request under way is answered
    # (saying the connection closes), and berth exits.
    idle = connect(server)
    idle.sendall(invocation(name, b"warm"))
    idle_answers = Answers(idle)
    assert idle_answers.next()[0] == 200
    busy = connect(server)
    busy.sendall(invocation(name, b"under way"))
    time.sleep(0.3)
    server.proc.send_signal(signal.SIGTERM)
    assert idle_answers.closed(timeout=5), "an idle connection outlived the stop"
    status, headers, body = Answers(busy).next()
    assert status == 200 and echoed(body)["body"] == "under way" and headers["connection"] == "close"
    assert server.proc.wait(timeout=20) == 0
    idle.close()
    busy.close()


def test_invocations_over_tls(own_berth, tmp_path):
    import boto3

    from conftest import CREDENTIALS
    from test_auth import make_certificate

    pem = make_certificate(tmp_path)
    server = own_berth("--tls-cert", str(pem["cert"]), "--tls-key", str(pem["key"]))
    assert server.url.startswith("https://")
    sm = boto3.client("sagemaker", endpoint_url=server.url, verify=str(pem["ca"]), **CREDENTIALS)
    runtime = boto3.client("sagemaker-runtime", endpoint_url=server.url, verify=str(pem["ca"]), **CREDENTIALS)
    name = deploy(sm, ["V"])
    for body in (b"small", b"x" * 900_000):
        answer = runtime.invoke_endpoint(EndpointName=name, Body=body, ContentType="text/plain")
        assert answer["InvokedProductionVariant"] == "V" and echoed(answer["Body"].read())["body"] == body.decode()
    # A 5 MB answer is written whole through TLS (many records, partial writes).
    answer = runtime.invoke_endpoint(EndpointName=name, Body=b"big:5000000")
    assert len(answer["Body"].read()) == 5_000_000
