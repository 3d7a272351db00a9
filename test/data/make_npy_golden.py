# Generates the .npy golden files in npy/ used by test/unit/NpyTest.cpp.
# Needs python3-numpy; run by hand from any directory and commit the output
# (the tests compare qfx's encoder with these bytes, as numpy 1.24 writes them).
import os

import numpy as np

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "npy")


def save(name, arr, version=None):
    path = os.path.join(OUT, name + ".npy")
    if version is None:
        np.save(path, arr)
    else:
        with open(path, "wb") as f:
            np.lib.format.write_array(f, arr, version=version)


def main():
    os.makedirs(OUT, exist_ok=True)
    f32 = np.array([[0.5, -1.25, 2.0], [3.0, -4.5, 1e6]], dtype=np.float32)
    # Supported dtypes, as np.save writes them.
    save("f32_2x3", f32)
    save("u8_5", np.array([0, 1, 127, 128, 255], dtype=np.uint8))
    save("s8_2x2", np.array([[-128, -1], [0, 127]], dtype=np.int8))
    save("s32_3", np.array([-2**31, 0, 2**31 - 1], dtype=np.int32))
    save("s64_2", np.array([-5, 2**40], dtype=np.int64))
    save("f32_scalar", np.array(3.5, dtype=np.float32))
    save("f32_0x3", np.zeros((0, 3), dtype=np.float32))
    # Other format versions.
    save("f32_2x3_v2", f32, version=(2, 0))
    save("f32_2x3_v3", f32, version=(3, 0))
    # Inputs qfx rejects.
    save("f32_fortran", np.asfortranarray(f32))
    save("f32_bigendian", f32.astype(">f4"))
    save("f64_2", np.array([1.0, 2.0], dtype=np.float64))
    save("bool_2", np.array([True, False]))


if __name__ == "__main__":
    main()
