"""The package's layout: subpackages that import one way, modules of a readable size, no module reaching
into another's private names. Read from the source with `ast`, nothing imported."""

import ast
import os

from conftest import REPO

PACKAGE = os.path.join(REPO, "src", "signtrain")
SUBPACKAGES = ("data", "model", "training", "export", "report")
# Who may import whom (besides the top-level leaves config and files). cli and subcommands sit on top.
ALLOWED = {"data": set(), "model": set(), "report": {"data"}, "export": {"data", "model", "report"},
           "training": {"data", "model", "report", "export"}}


def _modules():
    for folder, _, names in os.walk(PACKAGE):
        for name in sorted(names):
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                yield os.path.relpath(path, PACKAGE), ast.parse(open(path, encoding="utf-8").read())


def _imported(tree):
    """Every signtrain module or package named by an import, module level or inside a function."""
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "signtrain":
            parts = node.module.split(".")[1:]
            if parts:
                yield parts[0], node.lineno
            else:
                yield from ((alias.name, node.lineno) for alias in node.names)


def test_subpackages_import_one_way():
    wrong = []
    for relative, tree in _modules():
        home = relative.split(os.sep)[0] if os.sep in relative else None
        if home is None:
            continue  # cli, subcommands, config, files, __init__: the top
        for target, line in _imported(tree):
            if target in SUBPACKAGES and target != home and target not in ALLOWED[home]:
                wrong.append(f"{relative}:{line} imports signtrain.{target}")
            if target in ("cli", "subcommands"):
                wrong.append(f"{relative}:{line} imports the command line (signtrain.{target})")
    assert not wrong, "\n".join(wrong)


def test_every_subpackage_says_what_it_holds_and_no_module_is_long():
    for name in SUBPACKAGES:
        init = os.path.join(PACKAGE, name, "__init__.py")
        tree = ast.parse(open(init, encoding="utf-8").read())
        holds = {file[:-3] for file in os.listdir(os.path.join(PACKAGE, name)) if file.endswith(".py")} - {"__init__"}
        docstring = ast.get_docstring(tree)
        assert docstring and all(module in docstring for module in holds), f"{init}: its docstring lists its modules"
    long = [f"{relative}: {len(open(os.path.join(PACKAGE, relative)).readlines())} lines"
            for relative, _ in _modules() if len(open(os.path.join(PACKAGE, relative)).readlines()) > 300]
    assert not long, long


def test_no_module_calls_another_modules_private_names():
    module_names = {relative.split(os.sep)[-1][:-3] for relative, _ in _modules()}
    reaching = []
    for relative, tree in _modules():
        aliases = {alias.asname or alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                   and node.module and node.module.startswith("signtrain") for alias in node.names
                   if alias.name in module_names}
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                    and node.attr.startswith("_") and not node.attr.startswith("__")):
                reaching.append(f"{relative}:{node.lineno} {node.value.id}.{node.attr}")
    assert not reaching, reaching
