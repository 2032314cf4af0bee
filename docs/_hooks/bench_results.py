"""MkDocs hook: the benchmark results join the site.

``bench/results/*.json`` and ``*.png`` live outside ``docs/``; this hook adds each of them to
the site's files at the same path, ``bench/results/NAME``, so the results page can link to a
JSON file and show a plot as an image, and ``mkdocs build --strict`` checks those links like
any other (a link to a results file that does not exist fails the build). Nothing is copied
into ``docs/``; the files are written to the built site only.
"""

from __future__ import annotations

from pathlib import Path

from mkdocs.structure.files import File

#: what a results page may link to
RESULT_SUFFIXES = (".json", ".png")


#: the repository's root: this file is docs/_hooks/bench_results.py
ROOT = Path(__file__).resolve().parents[2]


def on_files(files, config):
    """Add every benchmark result file to the site's files as ``bench/results/NAME``."""
    for path in sorted((ROOT / "bench" / "results").iterdir()):
        if path.is_file() and path.suffix in RESULT_SUFFIXES:
            files.append(File(f"bench/results/{path.name}", src_dir=str(ROOT), dest_dir=config["site_dir"],
                              use_directory_urls=config["use_directory_urls"]))
    return files
