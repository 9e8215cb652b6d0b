#!/usr/bin/env python3
"""Fails on a broken link in the built documentation: every relative `href`/`src` of every page
under the book's directory must name a file that exists, and its `#fragment` an element id of
that page. Links to other sites are not followed (this machine reaches none).

    python3 tools/check_links.py target/book"""

import html.parser
import pathlib
import sys
import urllib.parse


class Page(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.links, self.ids = [], set()

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(a["id"])
        for key in ("href", "src"):
            if a.get(key):
                self.links.append(a[key])


def parse(path):
    page = Page()
    page.feed(path.read_text(errors="replace"))
    return page


def main(book):
    root = pathlib.Path(book).resolve()
    pages = {p: parse(p) for p in root.rglob("*.html")}
    broken = []
    for path, page in pages.items():
        if path.name == "404.html":
            continue  # links from the site's root, wherever it is served
        for link in page.links:
            url = urllib.parse.urlsplit(link)
            if url.scheme or url.netloc or link.startswith(("mailto:", "javascript:")):
                continue
            target = (path.parent / urllib.parse.unquote(url.path)).resolve() if url.path else path
            if target.is_dir():
                target = target / "index.html"
            if not target.exists() or root not in target.parents and target != root:
                broken.append(f"{path.relative_to(root)}: {link} (no such file)")
            elif url.fragment and target.suffix == ".html" and url.fragment not in pages.get(target, parse(target)).ids:
                broken.append(f"{path.relative_to(root)}: {link} (no such anchor)")
    if broken:
        sys.exit("broken links:\n  " + "\n  ".join(sorted(set(broken))))
    print(f"links: {sum(len(p.links) for p in pages.values())} in {len(pages)} pages, none broken")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "target/book")
