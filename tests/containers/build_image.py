#!/usr/bin/env python3
"""Builds a test container image without a registry: a root file system made from this
machine's own Python interpreter (the binary, the libraries `ldd` lists, the standard library
without tests and tools) and one server script, imported with `docker import`.

    build_image.py TAG [SCRIPT]

The image runs `python3 /opt/program/<script> serve` (the entrypoint plus SageMaker's `serve`
argument). It takes about a second and 60 MB; an image of the same inputs and tag is kept.
"""

import hashlib
import io
import json
import os
import pathlib
import re
import subprocess
import sys
import tarfile

HERE = pathlib.Path(__file__).resolve().parent
SKIPPED = {"test", "tests", "__pycache__", "idlelib", "tkinter", "ensurepip", "turtledemo", "lib2to3", "pydoc_data", "site-packages", "dist-packages"}


def interpreter():
    """The system interpreter (not a virtualenv's), its standard library, and its libraries."""
    python = pathlib.Path("/usr/bin/python3").resolve()
    if not python.exists():
        python = pathlib.Path(sys.executable).resolve()
    stdlib = pathlib.Path(subprocess.check_output([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['stdlib'])"], text=True).strip())
    return python, stdlib, libraries_of(python)


def add_tree(tar, source, target):
    for dirpath, dirnames, filenames in os.walk(source):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIPPED)
        rel = pathlib.Path(dirpath).relative_to(source)
        for name in sorted(filenames):
            tar.add(os.path.join(dirpath, name), arcname=str(pathlib.PurePosixPath(target) / rel / name), recursive=False)


def libraries_of(binary):
    """The shared libraries `ldd` lists for `binary` (the loader included)."""
    return [pathlib.Path(l) for l in re.findall(r"(/\S+)", subprocess.check_output(["ldd", str(binary)], text=True))]


def import_image(tag, inputs, fill, entrypoint):
    """Imports a root file system as image `tag`, unless an image of the same `inputs` (bytes
    naming what goes in) already has the tag. `fill(tar)` adds the files; `/tmp` and
    `/opt/ml/model` are added empty."""
    digest = hashlib.sha256(inputs).hexdigest()[:16]
    existing = subprocess.run(["docker", "image", "inspect", "-f", '{{index .Config.Labels "berth.test.inputs"}}', tag], capture_output=True, text=True)
    if existing.returncode == 0 and existing.stdout.strip() == digest:
        return tag
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        fill(tar)
        for empty in ("tmp", "opt/ml/model"):
            info = tarfile.TarInfo(empty)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if empty == "tmp" else 0o755
            tar.addfile(info)
    changes = [
        "ENTRYPOINT " + json.dumps(entrypoint),
        f"LABEL berth.test.inputs={digest}",
        f"LABEL berth.test.tag={tag}",  # a tag of its own makes another image (another digest)
    ]
    args = ["docker", "import"] + [a for c in changes for a in ("--change", c)] + ["-", tag]
    subprocess.run(args, input=buffer.getvalue(), check=True, capture_output=True)
    return tag


def add_binary(tar, binary, arcname):
    """A program and the libraries it loads, at their paths on this machine."""
    tar.add(str(pathlib.Path(binary).resolve()), arcname=arcname)
    for library in libraries_of(binary):
        tar.add(str(library.resolve()), arcname=str(library).lstrip("/"))


def build(tag, script=HERE / "echo_container.py"):
    script = pathlib.Path(script)
    python, stdlib, _ = interpreter()

    def fill(tar):
        add_binary(tar, python, "usr/bin/python3")
        add_tree(tar, stdlib, str(stdlib).lstrip("/"))
        tar.add(str(script), arcname=f"opt/program/{script.name}")

    inputs = script.read_bytes() + str(python).encode() + str(stdlib).encode()
    return import_image(tag, inputs, fill, ["/usr/bin/python3", f"/opt/program/{script.name}"])


if __name__ == "__main__":
    print(build(*sys.argv[1:]))
