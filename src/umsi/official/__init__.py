"""The released UMSI (Keras 2.3 / TF 1.14 ``.h5``): h5py-only reader, converter and class-order probe."""

from umsi.official.convert import OFFICIAL_NAME, convert, convert_keras_file, keras_to_torch
from umsi.official.h5 import ConversionError, KerasFile, read_keras_h5

__all__ = [
    "OFFICIAL_NAME",
    "ConversionError",
    "KerasFile",
    "convert",
    "convert_keras_file",
    "keras_to_torch",
    "read_keras_h5",
]
