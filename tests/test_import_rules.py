"""The import rules between the packages (pyproject.toml, docs/architecture.md) bite: on a
copy of the code with one import added that breaks a rule, `lint-imports` fails and
names that import; an allowed import passes. (./test.sh also checks the real tree
before the tests run.)"""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("chat", "models_admin", "relay", "ollama_layer", "config")
LINT = Path(sys.executable).parent / "lint-imports"


def lint(root: Path, contract: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(LINT), "--no-logo", "--no-cache", "--contract", contract],
        cwd=root,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "COLUMNS": "200"},
        timeout=60,
    )


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    """A copy of the packages' Python files and of pyproject.toml."""
    root = tmp_path_factory.mktemp("tree")
    for package in PACKAGES:
        shutil.copytree(
            ROOT / package,
            root / package,
            ignore=shutil.ignore_patterns("__pycache__"),
        )
    shutil.copy(ROOT / "pyproject.toml", root)
    return root


def with_import(tree: Path, tmp_path: Path, module: str, line: str) -> Path:
    """A copy of `tree` where `module` (a file path) also has `line`."""
    root = tmp_path / "tree"
    shutil.copytree(tree, root)
    with open(root / module, "a") as handle:
        handle.write(f"\n{line}\n")
    return root


def test_the_code_keeps_every_rule(tree):
    for contract in ("ollama-layer", "relay", "apps-independent", "no-cycles"):
        result = lint(tree, contract)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "1 kept, 0 broken" in result.stdout


# (contract, file, import added to it, the import as lint-imports names it)
BROKEN = [
    # The Ollama layer imports none of the others.
    ("ollama-layer", "ollama_layer/names.py", "from chat import text", "chat.text"),
    ("ollama-layer", "ollama_layer/hosts.py", "import models_admin.frames", "models_admin.frames"),
    ("ollama-layer", "ollama_layer/client.py", "from relay import live", "relay.live"),
    ("ollama-layer", "ollama_layer/failures.py", "from config import env", "config.env"),
    # The relay imports neither app, nor config.
    ("relay", "relay/live.py", "import chat.models", "chat.models"),
    ("relay", "relay/engine.py", "from models_admin import live", "models_admin.live"),
    ("relay", "relay/notes.py", "from config import env", "config.env"),
    # chat and models_admin are independent, both ways.
    (
        "apps-independent",
        "chat/views/pages.py",
        "import models_admin.services",
        "models_admin.services",
    ),
    ("apps-independent", "models_admin/views.py", "from chat import services", "chat.services"),
]


@pytest.mark.parametrize(("contract", "path", "line", "imported"), BROKEN)
def test_an_import_that_breaks_a_rule_fails_and_is_named(
    tree, tmp_path, contract, path, line, imported
):
    result = lint(with_import(tree, tmp_path, path, line), contract)
    assert result.returncode == 1
    assert "0 kept, 1 broken" in result.stdout
    importer = path.removesuffix(".py").replace("/", ".")
    assert f"{importer} -> {imported}" in result.stdout


# (file, import added to it that closes a cycle, the package, the two modules in it)
CYCLES = [
    ("chat/text.py", "from chat import protocol", "chat", ".text", ".protocol"),
    (
        "chat/services/branches.py",
        "from chat.services import answers",
        "chat.services",
        ".branches",
        ".answers",
    ),
    ("chat/services/history.py", "from chat import titles", "chat", ".services", ".titles"),
    ("relay/thinking.py", "from relay import answer_text", "relay", ".thinking", ".answer_text"),
    (
        "models_admin/frames.py",
        "from models_admin import pulls",
        "models_admin",
        ".frames",
        ".pulls",
    ),
    ("ollama_layer/names.py", "from ollama_layer import hosts", "ollama_layer", ".names", ".hosts"),
]


@pytest.mark.parametrize(("path", "line", "package", "one", "other"), CYCLES)
def test_an_import_cycle_fails_and_is_named(tree, tmp_path, path, line, package, one, other):
    result = lint(with_import(tree, tmp_path, path, line), "no-cycles")
    assert result.returncode == 1
    assert f"No cycles are allowed in {package}." in result.stdout
    # lint-imports names the import to remove to break it: either way round.
    assert f"- {one} -> {other} " in result.stdout or f"- {other} -> {one} " in result.stdout


def test_models_admin_may_read_chat_models(tree, tmp_path):
    root = with_import(tree, tmp_path, "models_admin/views.py", "from chat.models import Message")
    assert lint(root, "apps-independent").returncode == 0
