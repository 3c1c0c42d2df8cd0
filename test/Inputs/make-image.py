"""Writes a deterministic W x H RGB test image as binary PPM (stb reads it)."""
import sys
path, w, h = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with open(path, "wb") as f:
    f.write(b"P6 %d %d 255\n" % (w, h))
    f.write(bytes(((x * 7 + y * 13 + c * 50) % 256) for y in range(h) for x in range(w) for c in range(3)))
