"""The C ABI is usable from Python's ctypes: load libringmaster_worker_c.so, check its
versions, and that opening a worker outside a supervisor fails as worker.h says (a status,
a message, exit code 64), never a crash.

    python3 ctypes_smoke.py PATH/TO/libringmaster_worker_c.so
"""
import ctypes
import os
import sys

lib = ctypes.CDLL(sys.argv[1])
lib.rm_last_error.restype = ctypes.c_char_p

assert lib.rm_abi_version() == 1, lib.rm_abi_version()
assert lib.rm_version() == 100, lib.rm_version()

os.environ.pop("RINGMASTER_WORKER", None)
types = (ctypes.c_char_p * 1)(b"score")
worker = ctypes.c_void_p()
status = lib.rm_worker_open(b"ctypes_smoke", types, ctypes.c_size_t(1), ctypes.byref(worker))
RM_E_NOT_LAUNCHED = -1
assert status == RM_E_NOT_LAUNCHED, status
assert worker.value is None, worker.value
assert b"not launched" in lib.rm_last_error(), lib.rm_last_error()
assert lib.rm_exit_code(status) == 64
print("ctypes: ABI", lib.rm_abi_version(), "release", lib.rm_version(), "-", lib.rm_last_error().decode())
