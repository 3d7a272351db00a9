#!/usr/bin/env python3
"""Writes the onnx-import fuzz seeds: every case of test/Onnx/import/*.onnxtxt
that ONNX's parser accepts, serialized as a binary .onnx file.

    python3 test/fuzz/make_onnx_import_seeds.py   (needs python3-onnx)
"""
import glob
import os

import onnx.parser

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(HERE, "..", "Onnx", "import")
OUT = os.path.join(HERE, "corpus", "onnx-import")


def cases(path):
    """The cases of an .onnxtxt file without their `//` lines."""
    text = open(path).read()
    for i, case in enumerate(text.split("// -----")):
        lines = [l for l in case.splitlines() if not l.strip().startswith("//")]
        yield i, "\n".join(lines)


def main():
    os.makedirs(OUT, exist_ok=True)
    for path in sorted(glob.glob(os.path.join(SRC, "*.onnxtxt"))):
        stem = os.path.splitext(os.path.basename(path))[0]
        for i, text in cases(path):
            try:
                model = onnx.parser.parse_model(text)
            except Exception:  # noqa: BLE001 - cases the parser rejects
                continue
            name = stem if i == 0 else "%s-%d" % (stem, i)
            with open(os.path.join(OUT, name + ".onnx"), "wb") as f:
                f.write(model.SerializeToString())


if __name__ == "__main__":
    main()
