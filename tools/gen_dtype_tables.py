#!/usr/bin/env python3
"""Writes the dtype conversion tables that tests/isa/numerics_test.cc checks
isa/numerics.h against, bit for bit.

  python3 tools/gen_dtype_tables.py [--out tests/data/dtypes]

The reference is ml_dtypes (bfloat16, float8_e4m3, float8_e5m2) and numpy
(float16, which ml_dtypes does not define). Tooling only: neither is a build
or test dependency. The f32 sample is not stored; the test regenerates it
from the definition in sample_bits() below, which numerics_test.cc mirrors
line for line, and the FNV-1a hash in each encode file's header proves the
two agree. Layout: tests/data/dtypes/README.md.
"""

import argparse
import os
import struct
import sys

import ml_dtypes
import numpy as np

# Bump when the sample definition or the layout changes (the test checks it).
kVersion = 1
kMagic = b"NCDT"
kMask64 = (1 << 64) - 1

# name -> (numpy dtype, exponent bits, mantissa bits); all four are IEEE-like:
# bias 2^(E-1)-1, max exponent field = inf (mantissa 0) or NaN.
FORMATS = {
    "bf16": (ml_dtypes.bfloat16, 8, 7),
    "f16": (np.float16, 5, 10),
    "fp8_e4m3": (ml_dtypes.float8_e4m3, 4, 3),
    "fp8_e5m2": (ml_dtypes.float8_e5m2, 5, 2),
}

# Low halves paired with every upper-16-bit f32 pattern: exact (0x0000), just
# below / at / just above a bf16 tie (0x7FFF, 0x8000, 0x8001), all ones, and
# one PRNG value (appended per pattern).
kLowHalves = (0x0000, 0x7FFF, 0x8000, 0x8001, 0xFFFF)
kSeedLow = 0x6E636F72652D6C6F  # "ncore-lo"
kSeedRandom = 0x6E636F72652D7264  # "ncore-rd"
kRandomCount = 16384
# f32 values that are NaN, signed zero, inf, or sit on f32's own edges.
kFixedSpecials = (
    0x00000000, 0x80000000, 0x7F800000, 0xFF800000,  # +-0, +-inf
    0x7FC00000, 0xFFC00000, 0x7FFFFFFF, 0xFFFFFFFF,  # quiet NaNs
    0x7F800001, 0xFF800001, 0x7FA00000, 0x7FBFFFFF,  # signaling NaNs
    0x7F802000, 0x7F801FFF, 0xFF80E000,  # NaN payloads at / below f16's cut
    0x00000001, 0x80000001, 0x007FFFFF, 0x807FFFFF,  # f32 denormal extremes
    0x00800000, 0x80800000, 0x7F7FFFFF, 0xFF7FFFFF,  # f32 min normal, max
)


class SplitMix64:
    """splitmix64 (Steele, Lea, Flood 2014); numerics_test.cc has the same."""

    def __init__(self, seed):
        self.state = seed & kMask64

    def next(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & kMask64
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & kMask64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & kMask64
        return z ^ (z >> 31)


def f32_bits_of_encoding(k, exp_bits, man_bits):
    """f32 bits of non-negative encoding k, reading the inf code as the finite
    power of two it would be (so midpoints next to max finite come out right).
    Exact: every value of these formats is an f32."""
    bias = (1 << (exp_bits - 1)) - 1
    e, m = k >> man_bits, k & ((1 << man_bits) - 1)
    if e == 0:  # subnormal: m * 2^(1 - bias - man_bits)
        v = np.float32(m) * np.float32(2.0 ** (1 - bias - man_bits))
        return int(np.array(v, dtype=np.float32).view(np.uint32))
    return ((e - bias + 127) << 23) | (m << (23 - man_bits))


def boundary_keep(k, name):
    """Which encodings get their upper midpoint sampled: all for fp8; for the
    16-bit formats the mantissa ends that decide ties (even/odd low bit, carry
    into the exponent), which include 0, the first subnormals, the largest
    subnormal and max finite."""
    if name.startswith("fp8"):
        return True
    return (k & 0x3F) in (0x00, 0x01, 0x3E, 0x3F)


def sample_bits():
    """The f32 sample, as uint32 bit patterns, in file order."""
    out = []
    # 1. Every upper half x six lower halves: 393216 values.
    rng = SplitMix64(kSeedLow)
    for hi in range(1 << 16):
        for lo in kLowHalves:
            out.append((hi << 16) | lo)
        out.append((hi << 16) | (rng.next() & 0xFFFF))
    # 2. Fixed specials.
    out.extend(kFixedSpecials)
    # 3. Per format: each sampled midpoint between adjacent non-negative
    #    encodings k, k+1 (k+1 may be inf), and one f32 ulp either side, both
    #    signs. Midpoint bits are the mean of the neighbours' bits: f32 bit
    #    patterns are linear in value within a binade, and across a binade
    #    edge the lower neighbour's binade holds the midpoint.
    for name, (_, exp_bits, man_bits) in FORMATS.items():
        inf_code = ((1 << exp_bits) - 1) << man_bits
        for k in range(inf_code):
            if not boundary_keep(k, name):
                continue
            mid = (f32_bits_of_encoding(k, exp_bits, man_bits) +
                   f32_bits_of_encoding(k + 1, exp_bits, man_bits)) >> 1
            for b in (mid, mid - 1, mid + 1):
                out.append(b)
                out.append(b | 0x80000000)
    # 4. PRNG values: even slots raw bits, odd slots with the exponent folded
    #    into [2^-30, 2^22), where f16 and fp8 have their finite values.
    rng = SplitMix64(kSeedRandom)
    for i in range(kRandomCount):
        u = rng.next() >> 32
        if i & 1:
            e = 97 + ((u >> 23) & 0xFF) % 52
            u = (u & 0x807FFFFF) | (e << 23)
        out.append(u)
    return np.array(out, dtype=np.uint32)


def fnv1a64(words):
    h = 0xCBF29CE484222325
    for b in words.astype("<u4").tobytes():
        h = ((h ^ b) * 0x100000001B3) & kMask64
    return h


def write(path, elems, elem_bytes, input_hash):
    header = kMagic + struct.pack("<IIIQ", kVersion, len(elems), elem_bytes,
                                  input_hash)
    with open(path, "wb") as f:
        f.write(header)
        f.write(elems.astype("<u%d" % elem_bytes).tobytes())
    print("wrote %s (%d x %d B)" % (path, len(elems), elem_bytes))


def check_f16_nan_rule():
    """numpy's f32->f16 keeps the top 10 payload bits and sets bit 0 if they
    are all zero (software npy_floatbits_to_halfbits). Hardware paths (F16C,
    Arm FCVT) quiet signaling NaNs instead; refuse to write tables then, since
    they would not match numerics.h."""
    nan_in = np.array([0x7F800001, 0xFFA00000, 0x7F802000], dtype=np.uint32)
    with np.errstate(invalid="ignore"):
        got = nan_in.view(np.float32).astype(np.float16).view(np.uint16)
    if got.tolist() != [0x7C01, 0xFD00, 0x7C01]:
        sys.exit("numpy float16 NaN conversion is not the software rule "
                 "(got %s); tables would not match numerics.h" %
                 [hex(x) for x in got])


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(here, "..", "tests", "data",
                                                  "dtypes"))
    out_dir = os.path.normpath(ap.parse_args().out)
    os.makedirs(out_dir, exist_ok=True)
    check_f16_nan_rule()

    # (a) Decode: f32 bits of every encoding.
    for name, (dt, _, _) in FORMATS.items():
        nbits = 8 * np.dtype(dt).itemsize
        codes = np.arange(1 << nbits, dtype="u%d" % (nbits // 8))
        f32 = codes.view(dt).astype(np.float32).view(np.uint32)
        write(os.path.join(out_dir, "decode_%s.bin" % name), f32, 4, 0)

    # (b) Encode: the encoding of every sample value.
    bits = sample_bits()
    h = fnv1a64(bits)
    print("sample: %d values, fnv1a64 %016x" % (len(bits), h))
    for name, (dt, _, _) in FORMATS.items():
        size = np.dtype(dt).itemsize
        with np.errstate(invalid="ignore", over="ignore", under="ignore"):
            enc = bits.view(np.float32).astype(dt).view("u%d" % size)
        write(os.path.join(out_dir, "encode_%s.bin" % name), enc, size, h)


if __name__ == "__main__":
    main()
