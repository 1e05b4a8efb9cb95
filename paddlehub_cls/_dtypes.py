"""safetensors dtype codes and the numpy dtype strings they map to, defined once.

Plain strings, so that :mod:`paddlehub_cls.fastload` (and through it the cache commands) can
import the table without importing numpy; :mod:`paddlehub_cls.formats.safetensors_io` builds its
``np.dtype`` objects from it.
"""

from __future__ import annotations

from typing import Dict

#: code -> numpy dtype string (little-endian), as the safetensors format defines the codes.
SAFETENSORS_DTYPES: Dict[str, str] = {
    "BOOL": "|b1",
    "U8": "|u1",
    "I8": "|i1",
    "U16": "<u2",
    "I16": "<i2",
    "U32": "<u4",
    "I32": "<i4",
    "U64": "<u8",
    "I64": "<i8",
    "F16": "<f2",
    "F32": "<f4",
    "F64": "<f8",
    "C64": "<c8",
    "BF16": "<u2",  # numpy has no bfloat16: readers widen it to float32
}

#: The codes whose bytes numpy can view one-to-one (what ``save_safetensors`` writes, what
#: fastload maps without a copy): every code but BF16.
DIRECT_DTYPES: Dict[str, str] = {k: v for k, v in SAFETENSORS_DTYPES.items() if k != "BF16"}
