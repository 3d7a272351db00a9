# Generates the .safetensors golden files in safetensors/ used by
# test/unit/SafetensorsTest.cpp. Needs python3-numpy; run by hand from any
# directory and commit the output. The files are written from the format's
# specification (u64 little-endian header length, JSON header, data buffer):
#   canonical.safetensors: names sorted, contiguous offsets, compact JSON
#     padded with spaces to a multiple of 8 (what qfx writes);
#   reordered.safetensors: the same contents with the buffer in reverse
#     order, unsorted keys and spaced JSON (still valid).
import json
import os
import struct

import numpy as np

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "safetensors")

TENSORS = {
    "a.f32": ("F32", np.array([[0.5, -1.25, 2.0], [3.0, -4.5, 1e6]],
                              dtype="<f4")),
    "b.i8": ("I8", np.array([[-128, -1], [0, 127]], dtype="i1")),
    "c.u8": ("U8", np.array([0, 128, 255], dtype="u1")),
    "d.i32": ("I32", np.array([-2**31, 2**31 - 1], dtype="<i4")),
    "e.i64": ("I64", np.array(2**40, dtype="<i8")),
    "f.empty": ("F32", np.zeros((0, 4), dtype="<f4")),
}
METADATA = {"format": "pt"}


def build(names, header_order, compact):
    header, buf = {}, b""
    for name in names:
        dtype, arr = TENSORS[name]
        data = arr.tobytes()
        header[name] = {"dtype": dtype, "shape": list(arr.shape),
                        "data_offsets": [len(buf), len(buf) + len(data)]}
        buf += data
    header["__metadata__"] = METADATA
    ordered = {k: header[k] for k in header_order(list(header))}
    if compact:
        text = json.dumps(ordered, separators=(",", ":"), sort_keys=True)
        text += " " * (-len(text) % 8)
    else:
        text = json.dumps(ordered)
    raw = text.encode("utf-8")
    return struct.pack("<Q", len(raw)) + raw + buf


def write(name, data):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)


def main():
    os.makedirs(OUT, exist_ok=True)
    names = sorted(TENSORS)
    write("canonical.safetensors", build(names, sorted, True))
    write("reordered.safetensors",
          build(names[::-1], lambda keys: keys, False))


if __name__ == "__main__":
    main()
