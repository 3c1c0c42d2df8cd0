"""Computes crnn.cfg of test/Target/Darknet/crnn.test the way AlexeyAB's
Darknet does for one frame from its zero state (docs/darknet.md §R4.22),
without qsim: from qsim-run's dumped network input and the exported weights
file, in double precision, and compares each checked layer's output dumped
by qsim-run --dump-layers (within 1e-5 of the layer's largest magnitude).

  layer 0  [convolutional] filters=4 size=3 pad=1 leaky
  layer 1  [crnn] batch_normalize=1 size=3 pad=1 output=5 hidden=3 leaky
  layer 2  [crnn] size=1 output=2 hidden=2 relu shortcut=1

A [crnn] is input_layer, self_layer, output_layer (convolutions with the
section's keys; weights in that order, each biases, [scales, means,
variances,] weights) and computes
  state = input_layer(x) + self_layer(zero state);  out = output_layer(state)

usage: check-crnn.py [--no-self] WEIGHTS INPUT.npy LAYER0.npy CRNN1.npy CRNN2.npy

--no-self leaves self_layer's term out (a wrong reference: the test checks
that qsim's outputs do not match it, so the self term is really seen).
"""
import ast
import math
import struct
import sys
from array import array


def load_npy(path):
    with open(path, "rb") as f:
        data = f.read()
    hlen = struct.unpack("<H", data[8:10])[0]
    header = ast.literal_eval(data[10:10 + hlen].decode("latin1"))
    values = array("f")
    values.frombytes(data[10 + hlen:])
    return tuple(header["shape"]), list(values)


class Weights:
    def __init__(self, path):
        data = open(path, "rb").read()
        major, minor, _ = struct.unpack("<3i", data[:12])
        seen8 = major * 10 + minor >= 2 and major < 1000 and minor < 1000
        self.values = array("f")
        self.values.frombytes(data[20 if seen8 else 16:])
        self.pos = 0

    def take(self, n):
        v = list(self.values[self.pos:self.pos + n])
        assert len(v) == n, "weights file too short"
        self.pos += n
        return v


def activate(x, act):
    if act == "leaky":
        return x if x > 0 else 0.1 * x
    if act == "relu":
        return max(x, 0.0)
    assert act == "linear"
    return x


def conv(x, shape, w, filters, size, pad, bias, bn, act):
    """Darknet's convolution (stride 1): zero padding, then biases or the
    batch norm (x - mean) / sqrt(var + 1e-5) * scale + bias, then act."""
    c, h, wd = shape
    out = []
    for f in range(filters):
        for y in range(h):
            for xx in range(wd):
                acc = 0.0
                for ci in range(c):
                    for ky in range(size):
                        for kx in range(size):
                            iy, ix = y - pad + ky, xx - pad + kx
                            if 0 <= iy < h and 0 <= ix < wd:
                                acc += (x[(ci * h + iy) * wd + ix] *
                                        w[((f * c + ci) * size + ky) * size + kx])
                if bn:
                    scale, mean, var = bn
                    acc = (acc - mean[f]) / math.sqrt(var[f] + 1e-5) * scale[f]
                out.append(activate(acc + bias[f], act))
    return (filters, h, wd), out


def conv_layer(wf, x, shape, filters, size, pad, batch_normalize, act):
    bias = wf.take(filters)
    bn = None
    if batch_normalize:
        bn = (wf.take(filters), wf.take(filters), wf.take(filters))
    w = wf.take(filters * shape[0] * size * size)
    return conv(x, shape, w, filters, size, pad, bias, bn, act)


NO_SELF = False


def crnn(wf, x, shape, hidden, output, size, pad, bn, act):
    hs, inp = conv_layer(wf, x, shape, hidden, size, pad, bn, act)
    zero = [0.0] * len(inp)  # Darknet's calloc'ed state, first frame
    _, self_out = conv_layer(wf, zero, hs, hidden, size, pad, bn, act)
    if NO_SELF:
        self_out = zero
    state = [a + b for a, b in zip(inp, self_out)]
    return conv_layer(wf, state, hs, output, size, pad, bn, act)


def compare(name, want_shape, want, path):
    shape, got = load_npy(path)
    assert shape == want_shape, "%s: shape %s != %s" % (name, shape, want_shape)
    top = max(abs(v) for v in want) or 1.0
    err = max(abs(a - b) for a, b in zip(got, want))
    ok = err <= 1e-5 * top
    print("%s %s: max |qsim - reference| = %.2g of %.3g: %s" %
          (name, "x".join(map(str, shape)), err, top, "OK" if ok else "WRONG"))
    return ok


def main():
    global NO_SELF
    if sys.argv[1] == "--no-self":
        NO_SELF = True
        del sys.argv[1]
    wf = Weights(sys.argv[1])
    shape, x = load_npy(sys.argv[2])
    s0, l0 = conv_layer(wf, x, shape, 4, 3, 1, False, "leaky")
    s1, l1 = crnn(wf, l0, s0, 3, 5, 3, 1, True, "leaky")
    s2, l2 = crnn(wf, l1, s1, 2, 2, 1, 0, False, "relu")
    assert wf.pos == len(wf.values), "weights left over"
    ok = compare("layer 0", s0, l0, sys.argv[3])
    ok &= compare("crnn 1", s1, l1, sys.argv[4])
    ok &= compare("crnn 2", s2, l2, sys.argv[5])
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
