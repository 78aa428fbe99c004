"""``edgenext demo``: a static site that runs a checkpoint in the browser, built and served locally."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..demo.ort_web import CDN_URL, ENV_VAR, ORT_WEB_VERSION
from ..demo.server import serve
from ..demo.site import MAX_PIXELS, MAX_SIDE, PRECISIONS, RUNTIMES, build_site
from .options import FROM_WEIGHTS, add_input_size, add_model_args, add_task


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="build a web page that runs a model in the visitor's browser (ONNX Runtime Web), and serve it",
        description="Write a static site into --output: index.html with one small JS and CSS file, the fused model "
        "as model.onnx (exported and checked as edgenext export does), model.json (task, preprocessing, class "
        f"names, parameters) and ONNX Runtime Web {ORT_WEB_VERSION}'s files. The page classifies (top-5), detects "
        "(boxes, a score slider) or segments (a mask with an opacity slider) the images a visitor picks, drops or "
        "films, on their device (WebAssembly, or WebGPU where the browser has it), with the same preprocessing as "
        "Python, so its numbers equal ONNX Runtime's. Then serves it at http://localhost:PORT/ with the "
        "cross-origin isolation headers multi-threaded WebAssembly needs; any static host (GitHub Pages, "
        "python -m http.server) serves the folder too, single-threaded. "
        f"Images above {MAX_SIDE} px a side or {MAX_PIXELS // 1_000_000} megapixels are refused with a message.",
        epilog="examples: edgenext demo --weights runs/<run>/best.pth | "
        "edgenext demo --model edgenext_small --pretrained --output site --no-serve",
    )
    add_task(p, default=None, default_text=FROM_WEIGHTS)
    add_model_args(p)
    add_input_size(p, help="input side N, or HEIGHT WIDTH (default: the checkpoint's, else 256)")
    p.add_argument("--output", type=Path, default=Path("site"), metavar="DIR",
                   help="folder the site is written to (default: site; a non-empty folder must be a demo site)")
    p.add_argument("--precision", choices=PRECISIONS, default="fp32",
                   help="fp32 (default; checked against eager PyTorch to 1e-4) or int8 (classify: a quantised "
                   "ONNX file, calibrated on the digits training split, about 4x smaller)")
    p.add_argument("--runtime", choices=RUNTIMES, default="local",
                   help=f"local: copy ONNX Runtime Web into DIR/ort/ (default; works offline), cdn: load it from "
                   f"{CDN_URL}")
    p.add_argument("--ort-dist", type=Path, default=None, metavar="DIR",
                   help=f"onnxruntime-web {ORT_WEB_VERSION}'s dist/ folder (default: ${ENV_VAR}, the clone's "
                   "web/node_modules after `npm ci --prefix web`, the user cache, else downloaded from npm and "
                   "checked against the pinned sha512)")
    p.add_argument("--port", type=int, default=8000, help="local port (default 8000; 0: any free one)")
    p.add_argument("--host", default="127.0.0.1", help="address to serve on (default 127.0.0.1; 0.0.0.0: the "
                   "network, e.g. to open it on a phone; the camera needs localhost or HTTPS)")
    p.add_argument("--no-serve", action="store_true", help="only build the folder (publish it to any static host)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    site = build_site(args.output, weights=args.weights, model=args.model, pretrained=args.pretrained,
                      task=args.task, input_size=args.input_size, precision=args.precision, runtime=args.runtime,
                      ort_dist=args.ort_dist)
    print("\n".join(site.summary_lines()))
    if args.no_serve:
        print(f"publish it: copy {site.folder}/ to any static host, or try it with "
              f"`python -m http.server -d {site.folder}` (one thread) or `edgenext demo` (threads)")
        return 0
    serve(site.folder, args.port, args.host)
    return 0
