"""Generate ml/training_notebook.ipynb from ml/training_notebook.py (jupytext's py:percent format).

    python ml/build_notebook.py            write the .ipynb
    python ml/build_notebook.py --check    exit 1 if the committed .ipynb differs from the source

The .py is the source of truth; the .ipynb is committed without outputs so Colab can open it.
Cell ids are numbered, not random, so the same source always gives the same file.
"""

import argparse
import os
import sys

import jupytext
import nbformat

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.join(HERE, "training_notebook.py")
NOTEBOOK = os.path.join(HERE, "training_notebook.ipynb")
METADATA = {
    "accelerator": "GPU",
    "colab": {"gpuType": "T4", "provenance": []},
    "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
    "language_info": {"name": "python"},
}


def build(source_path=SOURCE):
    """The .ipynb text: jupytext reads the py:percent source; Colab's metadata and numbered ids added."""
    notebook = jupytext.read(source_path, fmt="py:percent")
    notebook.metadata = nbformat.from_dict(METADATA)  # jupytext's own notes about the .py are not Colab's
    for index, cell in enumerate(notebook.cells):
        cell.id = f"cell-{index:02d}"
        cell.metadata = {}
    nbformat.validate(notebook)
    return nbformat.writes(notebook) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args(argv)
    text = build()
    if args.check:
        with open(NOTEBOOK, encoding="utf-8") as handle:
            if handle.read() != text:
                print(f"{NOTEBOOK} is out of date: run `make notebook` and commit it", file=sys.stderr)
                return 1
        print(f"{NOTEBOOK} matches {SOURCE}")
        return 0
    with open(NOTEBOOK, "w", encoding="utf-8") as handle:
        handle.write(text)
    print(f"wrote {NOTEBOOK}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
