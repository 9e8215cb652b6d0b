#!/usr/bin/env python3
"""Builds the benchmarks' near-zero-cost container image: this machine's nginx (with its
libraries) answering /ping and /invocations on port 8080 with a fixed body, the same server
`bench/nginx_container.sh` runs as an `exec:` program. A static busybox shell takes SageMaker's
`serve` argument. Prints the tag.

    bench/nginx_image.py TAG
"""

import io
import pathlib
import shutil
import sys
import tarfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "containers"))
from build_image import add_binary, import_image  # noqa: E402

CONF = b"""worker_processes 1;
user root;
pid /tmp/nginx.pid;
error_log stderr warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path /tmp;
  proxy_temp_path /tmp;
  fastcgi_temp_path /tmp;
  uwsgi_temp_path /tmp;
  scgi_temp_path /tmp;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:8080;
    location = /ping { return 200 ""; }
    location = /invocations { default_type application/json; return 200 '{"predictions":[1]}'; }
  }
}
"""


def build(tag):
    nginx, busybox = shutil.which("nginx") or "/usr/sbin/nginx", "/bin/busybox"

    def add_bytes(tar, name, data):
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))

    def fill(tar):
        add_binary(tar, nginx, "usr/sbin/nginx")
        tar.add(busybox, arcname="bin/sh")
        add_bytes(tar, "etc/nginx/bench.conf", CONF)
        add_bytes(tar, "etc/passwd", b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n")
        add_bytes(tar, "etc/group", b"root:x:0:\nnogroup:x:65534:\n")
        for d in ("var/log/nginx", "var/lib/nginx"):
            info = tarfile.TarInfo(d)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)

    entry = ["/bin/sh", "-c", "exec /usr/sbin/nginx -c /etc/nginx/bench.conf -g 'daemon off;'", "container"]
    return import_image(tag, CONF + pathlib.Path(nginx).read_bytes()[:4096], fill, entry)


if __name__ == "__main__":
    print(build(sys.argv[1]))
