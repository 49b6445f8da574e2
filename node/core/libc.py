"""A Linux C library function, where there is one.

Why: a few system calls the standard library does not wrap (``sync_file_range``, ``syncfs``)
are worth calling where they exist; everywhere else their callers fall back to doing nothing
or to a wider call. One loader, so each caller only names the function and its arguments.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
from typing import Any


def linux_function(name: str, argtypes: list[Any]) -> Any | None:
    """``name`` from the C library, typed ``argtypes`` -> int and setting errno; None if this
    is not Linux, or the library or the function cannot be found."""
    if not hasattr(os, "sched_getaffinity"):  # a cheap "is this Linux" test
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        call = getattr(libc, name)
    except (OSError, AttributeError):
        return None
    call.argtypes = argtypes
    call.restype = ctypes.c_int
    return call
