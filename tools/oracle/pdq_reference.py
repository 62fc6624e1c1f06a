"""The PDQ reference (Meta's C++ code) called from Python, as the oracle for differential tests
and the peer in benchmarks.

The PyPI package `pdqhash` compiles the reference C++ sources into its extension module. Its
`compute()` computes luma in float64 numpy and casts it to float32, which differs from the C++
`fillFloatLumaFromRGB` (float32 products and sums) by one ulp on about a third of pixels. To test
bit-exactness against the reference itself we call the C++ functions the module exports,
`fillFloatLumaFromRGB` and `pdqHash256FromFloatLuma`, through ctypes: exactly the pipeline that
made testdata/pdq/expected.txt. `pdqhash.compute()` is also offered, to report how often the
wrapper's own shortcut differs.
"""
import ctypes

import numpy as np
import pdqhash
import pdqhash.bindings

_lib = ctypes.CDLL(pdqhash.bindings.__file__)
_fill_luma = _lib["_ZN8facebook3pdq7hashing20fillFloatLumaFromRGBEPhS2_S2_iiiiPf"]
_fill_luma.restype = None
_fill_luma.argtypes = [ctypes.c_void_p] * 3 + [ctypes.c_int] * 4 + [ctypes.c_void_p]
_hash_luma = _lib["_ZN8facebook3pdq7hashing23pdqHash256FromFloatLumaEPfS2_iiPA64_fS4_PA16_fRNS1_7Hash256ERi"]
_hash_luma.restype = None
_hash_luma.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_int,
                       ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                       ctypes.c_void_p]
# The two halves of pdqHash256FromFloatLuma, which calls exactly these two in this order; called
# separately they also give the intermediates (64x64 buffer, 16x16 coefficients).
_float_luma = _lib["_ZN8facebook3pdq7hashing24pdqFloat256FromFloatLumaEPfS2_iiPA64_fS4_PA16_fRi"]
_float_luma.restype = None
_float_luma.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_int,
                        ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
_to_bits = _lib["_ZN8facebook3pdq7hashing20pdqBuffer16x16ToBitsEPA16_fPNS1_7Hash256E"]
_to_bits.restype = None
_to_bits.argtypes = [ctypes.c_void_p, ctypes.c_void_p]


def _ptr(a: np.ndarray) -> int:
    return a.ctypes.data


class Reference:
    """Reusable buffers for the C++ reference (not thread-safe)."""

    def __init__(self):
        self.b64 = np.zeros((64, 64), np.float32)
        self.b16x64 = np.zeros((16, 64), np.float32)
        self.b16 = np.zeros((16, 16), np.float32)
        self.hash_words = np.zeros(16, np.uint16)
        self.quality = ctypes.c_int(0)

    def luma(self, rgb: np.ndarray) -> np.ndarray:
        """C++ fillFloatLumaFromRGB on an HxWx3 uint8 C-contiguous array."""
        rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
        h, w, _ = rgb.shape
        luma = np.empty((h, w), np.float32)
        base = _ptr(rgb)
        _fill_luma(base, base + 1, base + 2, h, w, 3 * w, 3, _ptr(luma))
        return luma

    def hash_luma(self, luma: np.ndarray):
        """C++ pdqHash256FromFloatLuma; returns (hex, quality). `luma` is overwritten."""
        h, w = luma.shape
        scratch = np.empty_like(luma)
        _hash_luma(_ptr(luma), _ptr(scratch), h, w, _ptr(self.b64), _ptr(self.b16x64),
                   _ptr(self.b16), _ptr(self.hash_words), ctypes.addressof(self.quality))
        hex_ = "".join(f"{int(wd):04x}" for wd in self.hash_words[::-1])
        return hex_, self.quality.value

    def floats_luma(self, luma: np.ndarray):
        """`pdqFloat256FromFloatLuma` then `pdqBuffer16x16ToBits`, which is what
        pdqHash256FromFloatLuma does: returns (hex, quality, buffer64x64, coefficients16x16),
        the two arrays float32 copies. `luma` is overwritten."""
        h, w = luma.shape
        scratch = np.empty_like(luma)
        _float_luma(_ptr(luma), _ptr(scratch), h, w, _ptr(self.b64), _ptr(self.b16x64),
                    _ptr(self.b16), ctypes.addressof(self.quality))
        _to_bits(_ptr(self.b16), _ptr(self.hash_words))
        hex_ = "".join(f"{int(wd):04x}" for wd in self.hash_words[::-1])
        return hex_, self.quality.value, self.b64.copy(), self.b16.copy()

    def hash_rgb(self, rgb: np.ndarray):
        """The reference pipeline on RGB pixels: (hex, quality)."""
        return self.hash_luma(self.luma(rgb))


def pdqhash_compute(rgb: np.ndarray):
    """The `pdqhash` package's own API: (hex, quality)."""
    bits, quality = pdqhash.compute(np.ascontiguousarray(rgb, dtype=np.uint8))
    value = 0
    for b in bits:
        value = (value << 1) | int(b)
    return f"{value:064x}", int(quality)
