"""Writes one API reference page per module of ``src/umsi`` at build time (mkdocs-gen-files), and the reference's
navigation (mkdocs-literate-nav), so a new module is documented without editing the site: the mkdocstrings recipe
"automatic code reference pages"."""

from __future__ import annotations

from pathlib import Path

import mkdocs_gen_files

SRC = Path(__file__).resolve().parents[2] / "src"
# the command-line entry points are documented by the pages of their tools; their modules hold no API
SKIPPED = {("umsi", "cli")}

nav = mkdocs_gen_files.Nav()
for path in sorted((SRC / "umsi").rglob("*.py")):
    parts = tuple(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__main__" or any(parts[: len(s)] == s for s in SKIPPED):
        continue
    if parts[-1] == "__init__":
        parts = parts[:-1]
        page = Path("reference", *parts, "index.md")
    else:
        page = Path("reference", *parts).with_suffix(".md")
    nav[parts] = page.relative_to("reference").as_posix()
    identifier = ".".join(parts)
    with mkdocs_gen_files.open(page, "w") as fd:
        fd.write(f"# `{identifier}`\n\n::: {identifier}\n")
    mkdocs_gen_files.set_edit_path(page, path.relative_to(SRC.parent))

with mkdocs_gen_files.open("reference/SUMMARY.md", "w") as nav_file:
    nav_file.writelines(nav.build_literate_nav())
