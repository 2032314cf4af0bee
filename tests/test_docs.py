"""The documentation: the site builds with ``mkdocs build --strict`` (no broken link, anchor or
API reference), every page of the manual exists and is in the nav, the results page links
every benchmark's JSON and shows its plot, and the README stays a front door."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytest.importorskip("mkdocs", reason="mkdocs is not installed (pip install -e '.[test]' brings it)")

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
RESULTS = ROOT / "bench" / "results"
#: the pages of the manual: each must exist and be in the nav
PAGES = ("index.md", "cli.md", "encoding.md", "corpora.md", "search-spaces.md", "gpt.md", "reconstruction.md",
         "search.md", "tracking.md", "hub.md", "troubleshooting.md", "results.md", "package.md", "api/index.md")
README_MAX_LINES = 200


def _mkdocs_build(config: Path, site: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(config),
                           "--site-dir", str(site)], cwd=config.parent, env=env, capture_output=True, text=True,
                          timeout=600)


def _nav_pages(nav) -> list[str]:
    """Every page file named in a mkdocs nav (nested lists of titles and pages)."""
    if isinstance(nav, str):
        return [nav]
    if isinstance(nav, dict):
        return [page for value in nav.values() for page in _nav_pages(value)]
    return [page for item in nav for page in _nav_pages(item)]


def test_the_site_builds_strictly(tmp_path):
    site = tmp_path / "site"
    built = _mkdocs_build(ROOT / "mkdocs.yml", site)
    assert built.returncode == 0, f"mkdocs build --strict failed:\n{built.stdout}\n{built.stderr}"
    # the hook put the benchmark results beside the pages they are linked from
    for path in RESULTS.glob("*.json"):
        assert (site / "bench" / "results" / path.name).is_file(), path.name
    assert (site / "api" / "search" / "index.html").is_file()


def test_strict_builds_fail_on_a_broken_link_an_anchor_or_a_missing_reference(tmp_path):
    """mkdocs.yml's validation settings and hook turn these into errors, and keep links to the
    benchmark results valid (checked on a small site, so that the real one need not break)."""
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "index.md").write_text("# Home\n\n## Present\n")
    result = sorted(RESULTS.glob("*.json"))[0].name

    def build(text: str, api: bool = False) -> subprocess.CompletedProcess:
        (docs / "page.md").write_text(f"# Page\n\n{text}\n")
        small = {"site_name": "check", "docs_dir": "docs", "validation": config["validation"],
                 "hooks": [str(ROOT / hook) for hook in config["hooks"]], "nav": ["index.md", "page.md"]}
        if api:
            small["plugins"] = [{"mkdocstrings": {"handlers": {"python": {"paths": [str(ROOT)]}}}}]
        (tmp_path / "mkdocs.yml").write_text(yaml.safe_dump(small))
        return _mkdocs_build(tmp_path / "mkdocs.yml", tmp_path / "site")

    for case, text, api in (("a missing page", "[gone](missing.md)", False),
                            ("a missing anchor", "[gone](index.md#absent)", False),
                            ("a missing results file", "[gone](bench/results/absent.json)", False),
                            ("a missing API reference", "::: gptnas_hf.no_such_module", True)):
        assert build(text, api).returncode != 0, f"a strict build passed with {case}"
    built = build(f"[home](index.md#present), [a result](bench/results/{result})")
    assert built.returncode == 0, f"the control build failed:\n{built.stderr}"


def test_every_page_exists_and_is_in_the_nav():
    nav = _nav_pages(yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"])
    for page in PAGES:
        assert (DOCS / page).is_file(), f"docs/{page} is missing"
        assert page in nav, f"docs/{page} is not in the nav of mkdocs.yml"
    for page in nav:
        assert (DOCS / page).is_file(), f"the nav names docs/{page}, which does not exist"
    assert "## How to add a search space" in (DOCS / "search-spaces.md").read_text()
    assert "## Fidelity of the fitness proxy against NAS-Bench-201" in (DOCS / "results.md").read_text()


def test_the_results_page_links_every_benchmark_json_and_shows_its_plot():
    page = (DOCS / "results.md").read_text()
    for path in sorted(RESULTS.glob("*.json")):
        assert f"](bench/results/{path.name})" in page, (
            f"docs/results.md does not link bench/results/{path.name}: add its table, with the date and commit "
            f"the JSON records")
        plot = path.with_suffix(".png")
        if plot.is_file():
            assert f"](bench/results/{plot.name})" in page, f"docs/results.md does not show bench/results/{plot.name}"


def test_the_readme_is_a_front_door_with_the_ci_commands():
    readme = (ROOT / "README.md").read_text()
    lines = readme.count("\n")
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; the manual belongs in docs/"
    ci = (ROOT / ".ci" / "run").read_text()
    test_command = next(line.strip() for line in ci.splitlines() if "pytest" in line)
    assert test_command in readme, f"README.md does not give CI's test command: {test_command}"
    assert 'pip install -e ".[test]"' in readme and "pip install -e ." in readme
    assert "mkdocs serve" in readme
    for target in re.findall(r"\]\((docs/[^)#]+)", readme):
        assert (ROOT / target).is_file(), f"README.md links {target}, which does not exist"


def test_the_shipped_checkpoint_carries_the_repositorys_model_card():
    """``from_pretrained`` users read the checkpoint's README.md; it is model_card.md, word for word
    (``gptnas package-checkpoint`` writes it; an edit of one without the other drifts)."""
    shipped = ROOT / "gptnas_hf" / "checkpoints" / "gptnas-default" / "README.md"
    assert shipped.read_text() == (ROOT / "model_card.md").read_text(), (
        "the shipped checkpoint's README.md differs from model_card.md: copy model_card.md over it")
