"""TF Serving's tensor types as JSON sees them: one table per fact, shared by every decoder.

DTYPES maps a DataType enum name to its numpy dtype and the DataTypeString TF Serving's error
texts use. The limits are what TF Serving's JSON reader accepts for a value of that type: an
integer a float input holds exactly, the largest finite float, and the integer range (TF
Serving reads the narrow integer types through int32).
"""
import numpy as np

DTYPES = {
    "DT_FLOAT": (np.float32, "float"),
    "DT_DOUBLE": (np.float64, "double"),
    "DT_HALF": (np.float16, "half"),
    "DT_INT8": (np.int8, "int8"),
    "DT_INT16": (np.int16, "int16"),
    "DT_INT32": (np.int32, "int32"),
    "DT_INT64": (np.int64, "int64"),
    "DT_UINT8": (np.uint8, "uint8"),
    "DT_UINT32": (np.uint32, "uint32"),
    "DT_UINT64": (np.uint64, "uint64"),
    "DT_BOOL": (np.bool_, "bool"),
    "DT_STRING": (object, "string"),
}
FLOAT_EXACT_INT = {"DT_FLOAT": 2**24 - 1, "DT_HALF": 2**24 - 1, "DT_DOUBLE": 2**53 - 1}
FLOAT_MAX = {"DT_FLOAT": float(np.finfo(np.float32).max),
             "DT_HALF": float(np.finfo(np.float32).max),
             "DT_DOUBLE": float(np.finfo(np.float64).max)}
INT_RANGE = {"DT_INT8": (-2**31, 2**31 - 1), "DT_INT16": (-2**31, 2**31 - 1),
             "DT_INT32": (-2**31, 2**31 - 1), "DT_UINT8": (-2**31, 2**31 - 1),
             "DT_INT64": (-2**63, 2**63 - 1), "DT_UINT32": (0, 2**32 - 1),
             "DT_UINT64": (0, 2**64 - 1)}
