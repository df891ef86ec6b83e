"""The rasterizer built portable (the default) and with ``-march=native`` (GAUSSVAE_NATIVE=1), side
by side in one run (figures in BENCHMARKS.md, "Portable and native rasterizer").

Compiles ``gaussvae_ros/core/_raster.c`` twice with the package's own flags
(:func:`gaussvae_ros.core._native.compile_flags`), then runs ``gaussvae bench --quick --json`` once
per build and round, alternating the order each round (``GAUSSVAE_RASTER_LIB`` selects the build),
and prints the figures of both builds and native / portable ratios (medians over the rounds).

    python benchmarks/bench_native.py [--rounds 2] [--json]
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO / "gaussvae_ros" / "core" / "_raster.c"
KEYS = ("render_ms_256", "fit_seconds_128", "fit_psnr_128", "fit_ssim_128")


def build(variant: str, out_dir: Path) -> tuple[Path, list[str]]:
    env = dict(os.environ, GAUSSVAE_NATIVE="1" if variant == "native" else "0")
    flags = json.loads(subprocess.run(
        [sys.executable, "-c", "import json; from gaussvae_ros.core._native import compile_flags; "
                               "print(json.dumps(compile_flags()))"], env=env, capture_output=True, text=True,
        check=True).stdout)
    target = out_dir / f"_raster_{variant}.so"
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    subprocess.run([compiler, *flags, "-fPIC", "-shared", "-o", str(target), str(SOURCE), "-lm"], check=True)
    return target, flags


def bench(lib: Path) -> dict:
    env = dict(os.environ, GAUSSVAE_RASTER_LIB=str(lib))
    result = subprocess.run([sys.executable, "-m", "gaussvae_ros.cli.main", "bench", "--quick", "--json"], env=env,
                            capture_output=True, text=True, check=True)
    return json.loads(result.stdout)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="bench runs per build (alternating order)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    runs = {"portable": [], "native": []}
    with tempfile.TemporaryDirectory() as tmp:
        libs = {v: build(v, Path(tmp)) for v in runs}
        for r in range(args.rounds):
            for variant in (("portable", "native") if r % 2 == 0 else ("native", "portable")):
                figures = bench(libs[variant][0])
                runs[variant].append(figures)
                print(variant, {k: figures.get(k) for k in KEYS}, file=sys.stderr, flush=True)
    out = {"rounds": args.rounds}
    for variant, results in runs.items():
        out[variant] = {"flags": " ".join(libs[variant][1]),
                        **{k: statistics.median(r[k] for r in results) for k in KEYS if k in results[0]}}
    out["native_over_portable"] = {k: round(out["native"][k] / out["portable"][k], 3)
                                   for k in KEYS if k in out["portable"] and out["portable"][k]}
    print(json.dumps(out) if args.json else json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
