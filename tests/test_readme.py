"""The README stays true: it links every notebook and names the commands CI runs."""

from __future__ import annotations

import re
from pathlib import Path

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
    requirements = README.split("## Two commands", 1)[1].split("```", 1)[0]
    layout = " ".join(_layout().split())
    cpp_part = layout[layout.index("`cpp/`"):].split(" · ", 1)[0]
    for folder, name in CPP_CONSUMERS.items():
        assert f"`{folder}/`" in cpp_readme, folder
        assert name in " ".join(requirements.split()) and name in cpp_part, name
    assert "onnxruntime-node" in cpp_part and "libonnxruntime-dev" in cpp_part
