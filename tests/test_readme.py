"""The README stays true: it links every notebook and names the commands CI runs."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from suite_script import suite

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_series_map_links_every_notebook() -> None:
    linked = set(re.findall(r"\(notebooks/(\d\d_[a-z0-9_]+\.ipynb)\)", README))
    present = {p.name for p in (ROOT / "notebooks").glob("*.ipynb")}
    assert linked == present, f"README map vs notebooks/: missing {present - linked}, stale {linked - present}"


def test_readme_speaks_of_the_product_only() -> None:
    from helpers.course.output_checks import forbidden_phrases

    for name in ("README.md", "CONTRIBUTING.md"):
        assert forbidden_phrases((ROOT / name).read_text()) == [], name


def test_ci_runs_the_readme_test_command() -> None:
    commands = re.findall(r"^(make \w+)\s+#", README, flags=re.M)
    assert commands[:2] == ["make run", "make test"], commands
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^make test$", ci, flags=re.M), "CI must run the README's test command"


def _notebook_meta() -> dict[str, dict]:
    import json

    return {p.name[:2]: json.loads(p.read_text())["metadata"]["inference_suite"]
            for p in sorted((ROOT / "notebooks").glob("*.ipynb"))}


def _layout() -> str:
    return README.split("## Layout", 1)[1].split("\n## ", 1)[0]


def test_layout_names_the_whole_series() -> None:
    numbers = sorted(_notebook_meta())
    span = re.search(r"`notebooks/` the series \((\d\d)–(\d\d)\)", _layout())
    assert span, "the Layout paragraph names the series' range: `notebooks/` the series (NN–NN)"
    assert [span[1], span[2]] == [numbers[0], numbers[-1]]


def test_teachers_kernel_notes_follow_the_metadata() -> None:
    """"switch to the openvino kernel ... (notebooks 00, 04, ...), and to gpu ... (00, 04)" lists
    exactly the notebooks whose metadata names that environment."""
    meta = _notebook_meta()
    note = re.search(r"switch to the `openvino` kernel\s+(?P<ov>.*?)\(notebooks (?P<ov_list>[\d, ]+)\), and to "
                     r"`gpu`(?P<gpu>.*?)\((?P<gpu_list>[\d, ]+)\)", README, flags=re.S)
    assert note, "the For teachers kernel note lists the openvino and gpu notebooks"
    for env, listed in (("openvino", note["ov_list"]), ("gpu", note["gpu_list"])):
        expected = [n for n, m in meta.items() if env in m["environments"]]
        assert re.findall(r"\d\d", listed) == expected, (env, listed, expected)


#: Each C++ consumer folder and the words the README uses for it.
CPP_CONSUMERS = {"torchscript_consumer": "TorchScript", "aoti_consumer": "AOTInductor", "ort_consumer": "ONNX Runtime"}


def test_readme_names_every_cpp_consumer() -> None:
    folders = {p.parent.name for p in (ROOT / "cpp").glob("*/CMakeLists.txt")}
    assert folders == set(CPP_CONSUMERS), f"cpp/ holds {sorted(folders)}: name each one in the README"
    cpp_readme = (ROOT / "cpp" / "README.md").read_text()
    requirements = _section("Requirements")
    layout = " ".join(_layout().split())
    cpp_part = layout[layout.index("`cpp/`"):].split(" · ", 1)[0]
    for folder, name in CPP_CONSUMERS.items():
        assert f"`{folder}/`" in cpp_readme, folder
        assert name in " ".join(requirements.split()) and name in cpp_part, name
    assert "onnxruntime-node" in cpp_part and "libonnxruntime-dev" in cpp_part


def _section(title: str) -> str:
    return README.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def _table(section: str) -> list[list[str]]:
    """The rows (cells stripped) of the first table in a section, header and rule left out."""
    lines = [line for line in section.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]


def _suite_sources() -> dict[str, str]:
    paths = [ROOT / "scripts" / "suite.py", ROOT / "conftest.py", ROOT / "Makefile", ROOT / ".ci" / "run",
             *sorted((ROOT / "helpers").rglob("*.py")), *sorted((ROOT / "tests").glob("*.py"))]
    return {str(p.relative_to(ROOT)): p.read_text() for p in paths}


#: Programs the suite runs that no requirement row needs to name: part of the system that asks for
#: them, or installed by the set-up itself.
NOT_REQUIREMENTS = {"sysctl": "macOS's own; read only there", "uv": "set-up installs it (requirements/uv.txt)"}


def test_requirements_table_names_exactly_the_programs_the_suite_runs() -> None:
    """Each program the table names is one the suite really runs or looks for; each program the
    suite runs or looks for (shutil.which, a subprocess argv) is in the table, ships in the
    environment (its bin/ folder), or is one of NOT_REQUIREMENTS."""
    rows = _table(_section("Requirements"))
    named = {tool for row in rows for tool in re.findall(r"`([^`\s/]+)`", row[0])}
    assert {"make", "python3", "cmake", "chromium"} <= named, named
    sources = _suite_sources()
    for tool in named - {"make"}:
        pattern = re.compile(rf"([\"'/]{re.escape(tool)}[\"'\s]|\?= {re.escape(tool)}$)", flags=re.M)
        assert any(pattern.search(text) for text in sources.values()), f"the README names `{tool}`, nothing runs it"
    assert (ROOT / "Makefile").is_file()
    used = {m for text in sources.values() for m in re.findall(
        r"(?:which\(|subprocess\.(?:run|Popen)\(\[)[\"']([\w.+-]+)[\"']", text)}
    in_environment = {p.name for p in Path(sys.executable).parent.iterdir()}
    unnamed = used - named - in_environment - set(NOT_REQUIREMENTS)
    assert not unnamed, f"the suite runs {sorted(unnamed)}: name them in the README's requirements"


def test_requirements_name_the_supported_pythons() -> None:
    row = next(r for r in _table(_section("Requirements")) if r[0].startswith("Python"))
    versions = tuple(tuple(int(n) for n in v.split(".")) for v in re.findall(r"3\.\d+", row[0]))
    assert versions == suite.SUPPORTED_PYTHONS


#: The README's names for the platforms of scripts/suite.py.
PLATFORM_NAMES = {"Linux x86_64": "linux-x86_64", "Linux aarch64": "linux-aarch64", "macOS arm64": "macos-arm64"}


def test_platform_table_says_what_installs_where() -> None:
    """Each platform row lists exactly the environments whose locks resolve there (the tests in
    test_locks.py resolve them), and Windows points at WSL2."""
    rows = {row[0]: row for row in _table(_section("Platforms"))}
    for label, name in PLATFORM_NAMES.items():
        row = next(r for key, r in rows.items() if key.startswith(label))
        listed = re.findall(r"\b(cpu|gpu|openvino)\b", row[1])
        expected = [env for env in suite.ENVIRONMENTS if name in suite.ENV_PLATFORMS[env]]
        assert listed == expected, (label, listed, expected)
    assert "WSL2" in rows["Windows"][1]


def test_series_shows_the_core_track_with_its_total_and_a_two_hour_class() -> None:
    from helpers.course.notebook_info import discover

    infos = {info.path.name[:2]: info for info in discover()}
    section = _section("The series")
    core_part, deep_part = section.split("### Deep dives", 1)
    core_rows = re.findall(r"^\| (\d\d) \|", core_part, re.M)
    deep_rows = re.findall(r"^\| (\d\d) \|", deep_part, re.M)
    assert core_rows == sorted(n for n, i in infos.items() if i.track == "core")
    assert deep_rows == sorted(n for n, i in infos.items() if i.track != "core")
    total = sum(infos[n].minutes or 0 for n in core_rows)
    assert f"### Core track ({total} min)" in core_part, f"the core track's heading says its total, {total} min"
    lesson = re.search(r"\*\*A two-hour class\*\* \((\d+) min\): (.*)", deep_part)
    assert lesson, "a two-hour class path is given"
    chosen = re.findall(r"\b(\d\d) \(", lesson.group(2))
    assert chosen and all(n in infos for n in chosen)
    assert int(lesson.group(1)) == sum(infos[n].minutes or 0 for n in chosen) <= 120
