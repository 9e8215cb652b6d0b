#!/usr/bin/env python3
"""Reference pages generated from the code: the events berth records (`EventKind` and its doc
comments in berth-domain's event.rs).

    python3 tools/docs_reference.py --write   # rewrites docs/src/reference/events.md
    python3 tools/docs_reference.py --check   # the test command: fails when the page is stale"""

import argparse
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
EVENTS_RS = ROOT / "crates" / "berth-domain" / "src" / "event.rs"
EVENTS_MD = ROOT / "docs" / "src" / "reference" / "events.md"


def event_kinds():
    """(name, doc) of each `EventKind` variant, in declaration order."""
    source = EVENTS_RS.read_text()
    body = source[source.index("pub enum EventKind {"):]
    body = body[: body.index("\n}\n")]
    kinds, doc = [], []
    for line in body.splitlines()[1:]:
        line = line.strip()
        if line.startswith("///"):
            doc.append(line[3:].strip())
        elif m := re.match(r"([A-Z]\w*),", line):
            kinds.append((m.group(1), " ".join(doc)))
            doc = []
    return kinds


def events_page():
    lines = [
        "# Events",
        "",
        "What berth records about endpoints (and jobs, and the registry), for people watching them:",
        "the dashboard, `berth events` (`--follow`), and `GET /berth/v1/events`. Each event has an id",
        "(growing), a time, the endpoint (or job or group) it concerns, the variant where one applies,",
        "its kind and a message. Generated from `EventKind` (`tools/docs_reference.py`).",
        "",
        "| Kind | What happened |",
        "|---|---|",
    ]
    lines += [f"| `{name}` | {doc} |" for name, doc in event_kinds()]
    return "\n".join(lines) + "\n"


def main():
    p = argparse.ArgumentParser()
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--write", action="store_true")
    g.add_argument("--check", action="store_true")
    args = p.parse_args()
    text = events_page()
    if args.write:
        EVENTS_MD.write_text(text)
    elif EVENTS_MD.read_text() != text:
        sys.exit(f"{EVENTS_MD} is stale: run tools/docs_reference.py --write")
    else:
        print(f"events reference: {len(event_kinds())} kinds, as the page says")


if __name__ == "__main__":
    main()
