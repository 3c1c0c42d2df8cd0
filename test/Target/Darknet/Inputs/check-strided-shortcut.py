"""Checks a strided [shortcut]'s output, dumped by qsim-run --dump-layers,
against pjreddie Darknet's definition (docs/darknet.md §R4.7), computed
here from the dumped inputs without qsim:

  out[c][y][x] = prev[c][y][x] + from[c][y*s][x*s]   for c < min(C, C_from)
  out[c][y][x] = prev[c][y][x]                        otherwise

(activation linear; one float32 addition, so the match must be exact).

usage: check-strided-shortcut.py PREV.npy FROM.npy OUT.npy STRIDE
"""
import ast
import struct
import sys
from array import array


def load(path):
    with open(path, "rb") as f:
        data = f.read()
    assert data[:6] == b"\x93NUMPY", path
    hlen = struct.unpack("<H", data[8:10])[0]
    header = ast.literal_eval(data[10:10 + hlen].decode("latin1"))
    assert header["descr"] == "<f4" and not header["fortran_order"], header
    values = array("f")
    values.frombytes(data[10 + hlen:])
    shape = header["shape"]
    assert len(shape) == 3 and len(values) == shape[0] * shape[1] * shape[2]
    return shape, values


def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def main():
    (c, h, w), prev = load(sys.argv[1])
    (cf, hf, wf), src = load(sys.argv[2])
    (co, ho, wo), out = load(sys.argv[3])
    s = int(sys.argv[4])
    assert (co, ho, wo) == (c, h, w), "output shape"
    bad = added = 0
    for k in range(c):
        for y in range(h):
            for x in range(w):
                want = prev[(k * h + y) * w + x]
                if k < min(c, cf):
                    want = f32(want + src[(k * hf + y * s) * wf + x * s])
                    added += 1
                got = out[(k * h + y) * w + x]
                if got != want:
                    if bad < 5:
                        print("MISMATCH c=%d y=%d x=%d: %r != %r" %
                              (k, y, x, got, want))
                    bad += 1
    print("checked %d values (%d with from added): %s" %
          (c * h * w, added, "OK" if bad == 0 else "%d wrong" % bad))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
