"""The ONNX Runtime Web files a demo site loads: one pinned release of the npm package ``onnxruntime-web``.

The version and its npm integrity string are pinned here and in ``web/package-lock.json`` (``npm ci
--prefix web`` installs it in a clone). ``find_dist`` looks for the package's ``dist/`` folder in
order: the folder given, ``$EDGENEXT_ORT_WEB``, the clone's ``web/node_modules``, the user cache
(``~/.cache/edgenext/onnxruntime-web-<version>/``); ``fetch_dist`` downloads the npm tarball into
that cache, checks its sha512 against the pinned integrity, and keeps only the files a site uses.

A site copies two entry points (``SITE_FILES``): the plain WebAssembly build (SIMD, threads when
the page is cross-origin isolated) and the WebGPU build (which also runs WebAssembly kernels for
the operators WebGPU lacks). The page loads one of them, so a visitor downloads one runtime.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import shutil
import tarfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Optional, Sequence, Union

#: the pinned release (web/package.json, web/package-lock.json)
ORT_WEB_VERSION = "1.30.0"
#: npm's integrity string of that release's tarball (web/package-lock.json)
ORT_WEB_INTEGRITY = "sha512-q0y+JrrtukXSzsBWEMccVfqX25LRmosXHF+CaRJmg8pZClzcV7svNc4rKY3jL02Vb7QmRMDs1SigqR4CXAfKYQ=="
TARBALL_URL = f"https://registry.npmjs.org/onnxruntime-web/-/onnxruntime-web-{ORT_WEB_VERSION}.tgz"
#: the same files on the package's CDN (``--runtime cdn``)
CDN_URL = f"https://cdn.jsdelivr.net/npm/onnxruntime-web@{ORT_WEB_VERSION}/dist/"
ENV_VAR = "EDGENEXT_ORT_WEB"

#: backend -> (the script the page loads, the WebAssembly module and binary that script loads)
ENTRY_POINTS = {
    "wasm": ("ort.wasm.min.js", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm"),
    "webgpu": ("ort.webgpu.min.js", "ort-wasm-simd-threaded.asyncify.mjs", "ort-wasm-simd-threaded.asyncify.wasm"),
}
SITE_FILES = tuple(name for files in ENTRY_POINTS.values() for name in files)

PathLike = Union[str, "os.PathLike[str]"]


class OrtWebNotFound(RuntimeError):
    """No ``onnxruntime-web`` dist folder here, and none could be downloaded."""


def cache_dir() -> Path:
    """``~/.cache/edgenext/onnxruntime-web-<version>/`` (``$XDG_CACHE_HOME`` respected)."""
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / "edgenext" / f"onnxruntime-web-{ORT_WEB_VERSION}"


def checkout_dist() -> Path:
    """Where ``npm ci --prefix web`` puts the dist folder in a source checkout of this project."""
    return Path(__file__).resolve().parents[3] / "web" / "node_modules" / "onnxruntime-web" / "dist"


def missing_files(folder: Path, files: Sequence[str] = SITE_FILES) -> list[str]:
    """The names of ``files`` that ``folder`` lacks."""
    return [name for name in files if not (folder / name).is_file()]


def find_dist(given: Optional[PathLike] = None) -> Optional[Path]:
    """The first dist folder holding every site file: ``given``, ``$EDGENEXT_ORT_WEB``, the checkout's
    ``web/node_modules``, the user cache; None when none does. A folder named explicitly (``given`` or the
    variable) that lacks files is an error naming them, not a silent fallback to another version."""
    for explicit, origin in ((given, "--ort-dist"), (os.environ.get(ENV_VAR) or None, f"${ENV_VAR}")):
        if explicit is not None:
            folder = Path(explicit)
            lacking = missing_files(folder)
            if lacking:
                raise OrtWebNotFound(f"{origin} {folder}: not an onnxruntime-web dist folder (no {', '.join(lacking)}); "
                                     f"give the dist/ folder of onnxruntime-web {ORT_WEB_VERSION}")
            return folder
    for folder in (checkout_dist(), cache_dir()):
        if not missing_files(folder):
            return folder
    return None


def verify_integrity(data: bytes, integrity: str = ORT_WEB_INTEGRITY) -> None:
    """Raise unless ``data`` has npm's ``sha512-<base64>`` ``integrity``."""
    algorithm, _, expected = integrity.partition("-")
    got = base64.b64encode(hashlib.new(algorithm, data).digest()).decode()
    if got != expected:
        raise OrtWebNotFound(f"the downloaded onnxruntime-web {ORT_WEB_VERSION} tarball has {algorithm} {got}, "
                             f"not the pinned {expected}: the download is corrupt or tampered with; try again")


def extract_site_files(data: bytes, target: Path) -> Path:
    """Write the site files of the npm tarball ``data`` (``package/dist/<file>``) into ``target``."""
    target.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for name in SITE_FILES:
            member = tar.extractfile(f"package/dist/{name}")
            if member is None:
                raise OrtWebNotFound(f"{TARBALL_URL}: has no dist/{name}")
            partial = target / f".{name}.part"
            partial.write_bytes(member.read())
            partial.replace(target / name)  # a cache never holds half a file
    return target


def fetch_dist(url: str = TARBALL_URL, target: Optional[Path] = None, timeout: float = 120.0) -> Path:
    """Download the pinned tarball from ``url``, check its integrity and extract the site files into
    ``target`` (default: the user cache); the folder, or ``OrtWebNotFound`` saying what to do offline."""
    target = target if target is not None else cache_dir()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            data = response.read()
    except (urllib.error.URLError, OSError) as err:
        raise OrtWebNotFound(
            f"onnxruntime-web {ORT_WEB_VERSION} is not here and {url} could not be downloaded ({err}). Offline: "
            f"run `npm ci --prefix web` in a clone of edgenext, or put the package's dist/ folder (from any machine: "
            f"`npm pack onnxruntime-web@{ORT_WEB_VERSION}`) somewhere and give it as --ort-dist DIR or ${ENV_VAR}; "
            "or build with --runtime cdn (the page then loads it from jsDelivr)") from None
    verify_integrity(data)
    return extract_site_files(data, target)


def locate_dist(given: Optional[PathLike] = None, *, download: bool = True) -> Path:
    """``find_dist``, else (``download``) ``fetch_dist`` into the user cache."""
    found = find_dist(given)
    if found is not None:
        return found
    if not download:
        raise OrtWebNotFound(f"no onnxruntime-web {ORT_WEB_VERSION} dist folder found (--ort-dist, ${ENV_VAR}, "
                             f"{checkout_dist()}, {cache_dir()}); run `npm ci --prefix web` in a clone")
    return fetch_dist()


def copy_site_files(dist: Path, target: Path) -> list[Path]:
    """Copy the site files of ``dist`` into ``target`` (created); the copies."""
    target.mkdir(parents=True, exist_ok=True)
    copies = []
    for name in SITE_FILES:
        copies.append(Path(shutil.copyfile(dist / name, target / name)))
    return copies
