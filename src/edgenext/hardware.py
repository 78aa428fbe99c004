"""What this machine's CPU can do, for the choices that depend on it (bf16, int8) and for the
bench header. Read from ``/proc/cpuinfo`` (Linux); elsewhere the flags are unknown (empty)."""

from __future__ import annotations

import functools
import os
import platform
from pathlib import Path

#: the ISA features that decide which precisions are fast, in the order the bench header lists them
ISA_FEATURES = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8")


@functools.lru_cache(maxsize=1)
def _cpuinfo() -> tuple[str, frozenset[str]]:
    name, flags = "", frozenset()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "model name" and not name:
                name = value.strip()
            elif key == "flags" and not flags:
                flags = frozenset(value.split())
            if name and flags:
                break
    except OSError:
        pass
    return name or platform.processor() or platform.machine(), flags


def cpu_name() -> str:
    """The CPU's model name (``lscpu``'s "Model name")."""
    return _cpuinfo()[0]


def cpu_flags() -> frozenset[str]:
    """Every ISA flag the kernel reports for the CPU (empty where unknown)."""
    return _cpuinfo()[1]


def isa_features() -> dict[str, bool]:
    """Each of ``ISA_FEATURES``: present or not."""
    flags = cpu_flags()
    return {f: f in flags for f in ISA_FEATURES}


#: ``ONEDNN_MAX_CPU_ISA`` values that keep oneDNN below its bf16 kernels (the variable caps the ISA
#: oneDNN dispatches to; it is how an AVX-512 machine is made to act as an AVX2-only one)
_ONEDNN_BELOW_BF16 = ("SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE", "AVX512_CORE_VNNI")


def native_bf16() -> tuple[bool, str]:
    """Whether the CPU computes bf16 natively (AVX512-BF16 or AMX-BF16), and a sentence saying
    so: without it bf16 is emulated through fp32 and is slower than fp32, so we do not offer it.
    ``ONEDNN_MAX_CPU_ISA`` set below bf16 counts as no native bf16 (oneDNN would emulate it)."""
    flags = cpu_flags()
    have = sorted(f for f in ("avx512_bf16", "amx_bf16") if f in flags)
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA", "").strip().upper()
    if have and cap in _ONEDNN_BELOW_BF16:
        return False, f"ONEDNN_MAX_CPU_ISA={cap} keeps oneDNN below its bf16 kernels: bf16 would run emulated"
    if have:
        return True, f"native bf16 ({', '.join(have)})"
    return False, f"{cpu_name()} has no native bf16 (neither avx512_bf16 nor amx_bf16): bf16 would run emulated, slower than fp32"


def int8_dot_product() -> tuple[bool, str]:
    """Whether the CPU has int8 dot-product instructions (VNNI or AMX-INT8), and a sentence saying so."""
    flags = cpu_flags()
    have = sorted(f for f in ("avx512_vnni", "avx_vnni", "amx_int8") if f in flags)
    if have:
        return True, f"int8 dot products ({', '.join(have)})"
    return False, f"{cpu_name()} has no int8 dot-product instructions (VNNI / AMX): int8 GEMMs gain little over fp32"


def cores() -> int:
    """CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
