#!/usr/bin/env python3
"""Mutation check: do the tests fail when the code is wrong?

A kept list of realistic, hand-made bugs (:data:`MUTATIONS`: off-by-one, swapped axes, wrong sign,
dropped check, changed QoS, wrong default) over the core, codecs, store, bag, pipeline, node and VAE
modules, each with the tests that should catch it. Each mutation is applied on its own to a scratch
copy of the tree (the working tree is never edited), its tests run there with a timeout, and it
counts as *killed* when they fail (or time out), *survived* when they pass. Prints the kill rate and
the survivors; exits 1 below ``--threshold`` (default 0.95), 2 when the tree itself is broken (a
mutation's text is not found exactly once, or the unmutated tests fail).

Run from the repository root with the interfaces on the path (slow, not part of CI)::

    . build_ros/env.sh && nice -n 10 .venv/bin/python scripts/mutation_check.py
    .venv/bin/python scripts/mutation_check.py --only render-cutoff-3-sigma   # one (repeatable)
    .venv/bin/python scripts/mutation_check.py --list                        # names and tests
    .venv/bin/python scripts/mutation_check.py --check-texts                 # texts still apply?

Run it when a hot path changes; add a mutation with every bug a test missed. The scratch copy runs
from its own folder (``python -m pytest`` puts it first on ``sys.path``), finds the shared recordings
through ``GAUSSVAE_SHARED`` (set to this tree's ``../shared`` unless given) and builds a mutated C
rasterizer into its own cache. Results of the last full run: BENCHMARKS.md, "Mutation check".
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = "gaussvae_ros"


@dataclass(frozen=True)
class Mutation:
    name: str
    path: str            # file, relative to the repository root
    old: str             # text that occurs exactly once in the file
    new: str             # what it becomes
    tests: tuple         # pytest arguments: paths, node ids, "-k", "expression"
    what: str            # the bug, in words


def M(name, path, old, new, tests, what):
    return Mutation(name, path, old, new, tuple(tests), what)


R = f"{PKG}/core/render.py"
FIT = f"{PKG}/core/fit.py"
RD = f"{PKG}/codecs/gaussians_rd/format.py"
RDFIT = f"{PKG}/codecs/gaussians_rd/fit.py"
T_RENDER = "test/core/test_render.py"
T_RD = "test/codecs/test_codecs_gaussians_rd.py"
T_RD_FAST = (T_RD, "-k", "not beats_fit_then_quantize and not more_bytes")

MUTATIONS: tuple[Mutation, ...] = (
    # --- core: renderer ------------------------------------------------------------------------
    M("render-cutoff-3-sigma", R, "CUTOFF = 25.0", "CUTOFF = 9.0",
      (T_RENDER, "-k", "support_is or work_is"), "support 5 sigma -> 3 sigma"),
    M("render-no-lowpass", R, "LOWPASS_VARIANCE = 0.3", "LOWPASS_VARIANCE = 0.0",
      (T_RENDER, "-k", "projection_is or sub_pixel"), "low-pass variance 0.3 -> 0"),
    M("render-rmin-half-spacing", R, "RMIN_SPACING = 1.0", "RMIN_SPACING = 0.5",
      (T_RENDER, "-k", "no_holes or work_is"), "minimum support radius half the documented one"),
    M("render-max-cutoff", R, "MAX_CUTOFF = 170.0", "MAX_CUTOFF = 100.0",
      (T_RENDER, "-k", "q_170"), "the reference renderer caps enlarged supports earlier than the compiled one"),
    M("render-covariance-axes-swapped", R, "pxx = sxx * (width * width) + lowpass",
      "pxx = sxx * (height * height) + lowpass",
      (T_RENDER, "-k", "covariance"), "x variance scaled by the height"),
    M("render-reference-blend-mode", R, "        if mode == 0:\n            wsum", "        if mode == 1:\n            wsum",
      (T_RENDER, "-k", "forward_and_gradients and 1-"), "reference renderer normalizes the sum blend"),
    M("render-count-pairs-without-rmin", R,
      "    rmin = min_support_px(len(gaussians), height, width, gaussians.blend)\n    return int(",
      "    rmin = 0.0\n    return int(",
      (T_RENDER, "-k", "work_is"), "work measure ignores the minimum radius"),
    M("render-band-shift-axis", R, "means.new_tensor([0.0, float(y0)])", "means.new_tensor([float(y0), 0.0])",
      (T_RENDER, "-k", "banded"), "bands shifted along x instead of y"),
    M("render-rmin-for-sum-blend", R, 'if blend == "normalized" else 0.0', 'if blend == "sum" else 0.0',
      (T_RENDER, "-k", "no_holes or support_is"), "minimum radius given to the wrong blend"),
    M("raster-c-lowpass-x-only", f"{PKG}/core/_raster.c",
      "float pyy = (v1 * s * s + v2 * c * c) * fh * fh + lowpass;",
      "float pyy = (v1 * s * s + v2 * c * c) * fh * fh;",
      (T_RENDER, "-k", "projection_is or sub_pixel"), "compiled projection drops the y low-pass"),
    # --- core: fitter ---------------------------------------------------------------------------
    M("fit-colour-gets-rotation-lr", FIT, "[lrs[3]] * c", "[lrs[2]] * c",
      ("test/core/test_fit.py", "-k", "one_step"), "colour group stepped with the rotation's rate"),
    M("fit-scale-rot-lrs-swapped", FIT, "lrs = (config.lr_xy, config.lr_scale, config.lr_rot, config.lr_color)",
      "lrs = (config.lr_xy, config.lr_rot, config.lr_scale, config.lr_color)",
      ("test/core/test_fit.py", "-k", "one_step"), "log-scale and rotation rates swapped"),
    M("fit-adam-no-bias-correction", FIT, "correction1 = 1 - self.beta1 ** self.steps", "correction1 = 1.0",
      ("test/core/test_fit.py", "-k", "one_step"), "Adam's first moment not bias-corrected"),
    M("fit-position-clamp-units", FIT, "params.raw[:, 0:2].clamp_(0.0, 1.0 / config.lr_xy)",
      "params.raw[:, 0:2].clamp_(0.0, 1.0)",
      ("test/core/test_fit.py", "-k", "stated_floor"), "positions clamped in raw units"),
    M("fit-warm-shift-sign", FIT, "warm.xy += np.array([dx / w, dy / h]", "warm.xy -= np.array([dx / w, dy / h]",
      ("test/core/test_fit.py", "-k", "warm_start"), "warm start shifted against the motion"),
    M("morton-axes-swapped", f"{PKG}/core/morton.py",
      "return _spread_bits(q[..., 0]) | (_spread_bits(q[..., 1]) << np.uint64(1))",
      "return _spread_bits(q[..., 1]) | (_spread_bits(q[..., 0]) << np.uint64(1))",
      ("test/core/test_morton.py",), "v in the even bits, u in the odd ones"),
    M("image-uint8-truncates", f"{PKG}/core/image.py", "np.clip(np.rint(np.asarray(image, dtype=np.float32) * 255.0)",
      "np.clip(np.floor(np.asarray(image, dtype=np.float32) * 255.0)",
      ("test/core/test_image.py",), "to_uint8 truncates instead of rounding"),
    M("image-16-bit-scale", f"{PKG}/core/image.py", "out = array.astype(np.float32) / 65535.0",
      "out = array.astype(np.float32) / 65536.0", ("test/core/test_image.py",), "uint16 scaled by 2^16"),
    M("codec-q-dequantize-no-half", f"{PKG}/core/codec.py", "(q.astype(np.float64) + 0.5) * (hi - lo)",
      "(q.astype(np.float64)) * (hi - lo)", ("test/core/test_codec.py",), "bins decoded at their low edge"),
    # --- codec gaussians-rd: format ------------------------------------------------------------
    M("rd-morton-gap-off-by-one", RD, "code = np.cumsum((1 << k) + mantissa - 1)", "code = np.cumsum((1 << k) + mantissa)",
      T_RD_FAST, "Morton gaps decoded one too large"),
    M("rd-positions-transposed", RD,
      "qx, qy = _compact(code).astype(np.int64), _compact(code >> np.uint64(1)).astype(np.int64)",
      "qy, qx = _compact(code).astype(np.int64), _compact(code >> np.uint64(1)).astype(np.int64)",
      T_RD_FAST, "decoder swaps the interleaved axes"),
    M("rd-refine-bits-floor", RD, "r = np.ceil(np.log2(np.maximum(steps.cell / (steps.pos_kappa * minor), 1.0)))",
      "r = np.floor(np.log2(np.maximum(steps.cell / (steps.pos_kappa * minor), 1.0)))",
      (T_RD, "-k", "refine"), "one refinement bit too few"),
    M("rd-refine-bits-cap", RD, "return np.clip(r, 0, MAX_REFINE_BITS).astype(np.int64)",
      "return np.clip(r, 0, MAX_REFINE_BITS - 2).astype(np.int64)", (T_RD, "-k", "refine"),
      "refinement capped below the format's 6 bits"),
    M("rd-rotation-levels-elongation", RD, "x = steps.rot_kappa * math.pi * np.exp(2.0 * q_an * steps.an)",
      "x = steps.rot_kappa * math.pi * np.exp(q_an * steps.an)", (T_RD, "-k", "angle"),
      "angle levels from sqrt of the elongation"),
    M("rd-rotation-round-gets-levels", RD, "return np.where(q_an > 0, np.clip(levels, 2, MAX_ROT_LEVELS), 1)",
      "return np.where(q_an >= 0, np.clip(levels, 2, MAX_ROT_LEVELS), 1)", (T_RD, "-k", "angle"),
      "round Gaussians get an angle coded"),
    M("rd-size-prediction-two-nearest", RD, "_, idx = cKDTree(pts).query(pts, k=min(4, n))",
      "_, idx = cKDTree(pts).query(pts, k=min(3, n))", (T_RD, "-k", "size_prediction"),
      "size predicted from 2 neighbours, not 3"),
    M("rd-size-prediction-truncates", RD, "np.floor(np.log(spacing) / steps.ls + 0.5)",
      "np.floor(np.log(spacing) / steps.ls)", (T_RD, "-k", "size_prediction"), "prediction truncated, not rounded"),
    M("rd-crc-not-checked", RD, "    if (zlib.crc32(data[:-_CRC_BYTES]) & 0xFFFF) != int.from_bytes(",
      "    if False and (zlib.crc32(data[:-_CRC_BYTES]) & 0xFFFF) != int.from_bytes(", (T_RD, "-k", "damaged"),
      "checksum check dropped"),
    M("rd-inverse-colour-sign", RD, "return np.stack([t + co, y + cg, t - co], 1)", "return np.stack([t - co, y + cg, t + co], 1)",
      (T_RD, "-k", "bounded_by_the_steps or canonical or gray"), "YCoCg inverse swaps red and blue"),
    M("rd-header-height-bits", RD, 'int.from_bytes(size, "little") >> 12', 'int.from_bytes(size, "little") >> 11',
      (T_RD, "-k", "bit_exact"), "height read from the wrong bit offset"),
    # --- codec gaussians-rd: fitting and rate control ------------------------------------------
    M("rd-ste-no-straight-through", RDFIT, "return x + (xq - x).detach()", "return x + (xq - x)",
      (T_RD, "-k", "straight_through"), "quantizer gradient is zero (rounding differentiated)"),
    M("rd-ste-forward-unquantized", RDFIT, "return x + (xq - x).detach()", "return xq + (x - xq).detach()",
      (T_RD, "-k", "straight_through"), "forward pass sees the unquantized values"),
    M("rd-rate-control-over-prunes", RDFIT, "per = (estimate - header) / len(g)", "per = (estimate - header) / len(g) / 2",
      (T_RD, "-k", "low_first_guess or fits_its_budget and 400"), "pruning count doubled: the budget is not filled"),
    M("rd-budget-check-dropped", RDFIT, "    while len(payload) > budget and len(g) > 1:",
      "    while len(payload) > budget + 64 and len(g) > 1:", (T_RD, "-k", "real_bytes"),
      "the last check on the real bytes lets payloads over the budget through"),
    M("rd-header-budget-check", RDFIT, "if budget < header + 1:", "if budget < header - 10:",
      (T_RD, "-k", "below_the_header"), "a budget below the header is not refused"),
    # --- store ----------------------------------------------------------------------------------
    M("store-duplicate-key-per-profile", f"{PKG}/store/schema.py", "ON memories (stream_id, stamp_ns)",
      "ON memories (stream_id, stamp_ns, profile_id)", ("test/store/test_store.py", "-k", "reinsert"),
      "the same frame re-encoded is stored twice"),
    M("store-insert-replaces", f"{PKG}/store/store.py", '_INSERT_SQL = f"INSERT OR IGNORE INTO memories',
      '_INSERT_SQL = f"INSERT OR REPLACE INTO memories', ("test/store/test_store.py", "-k", "reinsert"),
      "a re-inserted frame replaces the stored one"),
    M("store-radius-exclusive", f"{PKG}/store/store.py", 'AND m.x IS NOT NULL AND d2 <= ?"',
      'AND m.x IS NOT NULL AND d2 < ?"', ("test/store/test_store_queries.py", "-k", "not real_drive"),
      "a memory exactly at the radius is left out"),
    M("store-time-order-inverted", f"{PKG}/store/store.py", 'direction = "ASC" if order == "asc" else "DESC"',
      'direction = "DESC" if order == "asc" else "ASC"', ("test/store/test_store_queries.py", "-k", "time"),
      "time queries in the opposite order"),
    M("retention-age-inclusive", f"{PKG}/store/retention.py", "cutoff = newest - round(policy.max_age_s * 1e9)",
      "cutoff = newest - round(policy.max_age_s * 1e9) + 1", ("test/store/test_store_retention.py", "-k", "age"),
      "a memory exactly max_age_s old is dropped"),
    # --- bag ------------------------------------------------------------------------------------
    M("keyframe-interval-exclusive", f"{PKG}/bag/keyframes.py", "if dt >= cfg.max_interval_s:",
      "if dt > cfg.max_interval_s:", ("test/bag/test_bag_keyframes.py", "-k", "not real"),
      "a frame exactly max_interval_s later is not stored"),
    M("keyframe-rate-cap-inclusive", f"{PKG}/bag/keyframes.py", "if dt < cfg.min_interval_s:",
      "if dt <= cfg.min_interval_s:", ("test/bag/test_bag_keyframes.py", "-k", "not real"),
      "a frame exactly min_interval_s later is refused"),
    M("keyframe-pose-frames-compared", f"{PKG}/bag/keyframes.py", "pose.frame_id == last.pose.frame_id",
      "pose.frame_id != last.pose.frame_id", ("test/bag/test_bag_keyframes.py", "-k", "not real"),
      "poses of different frames compared"),
    M("images-bgr16-not-swapped", f"{PKG}/bag/images.py", '"bgr16": (np.dtype(np.uint16), 3, (2, 1, 0)),',
      '"bgr16": (np.dtype(np.uint16), 3, (0, 1, 2)),', ("test/bag/test_bag_images.py",), "bgr16 channels not swapped"),
    M("images-byte-order-inverted", f"{PKG}/bag/images.py", 'dtype.newbyteorder(">" if bool(msg.is_bigendian) else "<")',
      'dtype.newbyteorder("<" if bool(msg.is_bigendian) else ">")', ("test/bag/test_bag_images.py",),
      "is_bigendian read the wrong way round"),
    M("poses-interpolation-weight", f"{PKG}/bag/poses.py",
      "position = (1.0 - w) * self._positions[i - 1] + w * self._positions[i]",
      "position = w * self._positions[i - 1] + (1.0 - w) * self._positions[i]",
      ("test/bag/test_bag_poses.py",), "interpolation weights swapped"),
    M("poses-gap-exclusive", f"{PKG}/bag/poses.py", "if t1 - t0 <= max_gap_ns:", "if t1 - t0 < max_gap_ns:",
      ("test/bag/test_bag_poses.py",), "no interpolation across a gap of exactly max_gap_ns"),
    # --- pipeline -------------------------------------------------------------------------------
    M("pipeline-warm-start-inclusive", f"{PKG}/pipeline/memory.py",
      "if image_change is None or image_change >= settings.warm_start_max_change:",
      "if image_change is None or image_change > settings.warm_start_max_change:",
      ("test/pipeline/test_pipeline_memory.py", "-k", "similar"), "warm start at exactly the threshold"),
    # --- nodes ----------------------------------------------------------------------------------
    M("qos-memory-volatile", f"{PKG}/nodes/convert.py", "durability=DurabilityPolicy.TRANSIENT_LOCAL)",
      "durability=DurabilityPolicy.VOLATILE)", ("test/nodes/test_nodes_memory.py", "-k", "started_after"),
      "records published before the memory node started are lost"),
    M("qos-memory-depth", f"{PKG}/nodes/convert.py", "QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=50,",
      "QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10,", ("test/nodes/test_nodes_memory.py", "-k", "started_after"),
      "a late memory node gets 10 records, not 50"),
    M("time-msg-microseconds", f"{PKG}/nodes/convert.py", "return int(stamp.sec) * NS_PER_S + int(stamp.nanosec)",
      "return int(stamp.sec) * 1_000_000 + int(stamp.nanosec)", ("test/nodes/test_nodes_memory.py", "-k", "query_by_time"),
      "stamps read with a wrong unit"),
    M("memory-max-results-unchecked", f"{PKG}/nodes/memory_node.py",
      '    check_range(problems, values, "max_results", 1, 10_000_000)\n', "",
      ("test/nodes/test_nodes_memory.py", "-k", "parameter_ranges"), "max_results range check removed"),
    M("memory-retention-speed-unchecked", f"{PKG}/nodes/memory_node.py",
      'check_range(problems, values, "retention_metres_per_second", 1e-12)',
      'check_range(problems, values, "retention_metres_per_second", 0.0)',
      ("test/nodes/test_nodes_memory.py", "-k", "parameter_ranges"), "a zero retention speed accepted"),
    M("recall-max-images-unchecked", f"{PKG}/nodes/recall_node.py",
      '    check_range(problems, values, "max_images", 1, 100_000)\n', "",
      ("test/nodes/test_nodes_recall.py", "-k", "parameter_ranges"), "max_images range check removed"),
    M("recall-publish-depth-off-by-one", f"{PKG}/nodes/recall_node.py",
      'check_range(problems, values, "publish_depth", 1, 10_000)', 'check_range(problems, values, "publish_depth", 0, 10_000)',
      ("test/nodes/test_nodes_recall.py", "-k", "parameter_ranges"), "publish_depth 0 accepted"),
    M("query-cap-ignored", f"{PKG}/nodes/queries.py", "capped = limit == 0 or limit > max_results",
      "capped = limit == 0", ("test/nodes/test_nodes_memory.py", "-k", "max_results_change"),
      "a limit above max_results is not capped"),
    # --- VAE ------------------------------------------------------------------------------------
    M("vae-kl-weight-per-epoch", f"{PKG}/vae/train.py", "losses = run.criterion(run.net(x), x, run.step)",
      "losses = run.criterion(run.net(x), x, run.epoch)", ("test/vae/test_vae_train.py", "-k", "kl_weight"),
      "KL weight driven by the epoch, not the step"),
    M("vae-kl-weight-uncapped", f"{PKG}/vae/losses.py", "return float(beta) * min(1.0, max(0.0, progress))",
      "return float(beta) * max(0.0, progress)", ("test/vae/test_vae_train.py", "-k", "kl_weight"),
      "KL weight keeps rising past beta"),
)

_TOP_LEVEL_IGNORED = {".venv", "build_ros", "out", "experiments", ".hypothesis", "data", "runs"}
_ANYWHERE = shutil.ignore_patterns(".git", "__pycache__", "*.pyc", ".pytest_cache")


def _IGNORED(folder, names):
    ignored = set(_ANYWHERE(folder, names))
    if Path(folder) == ROOT:
        ignored |= _TOP_LEVEL_IGNORED & set(names)
    return ignored


def scratch_copy(dest: Path) -> Path:
    """The tree without VCS, venv, build outputs and data, file times kept (the compiled rasterizer
    stays newer than its source, so the scratch copy loads it unless the source is mutated)."""
    shutil.copytree(ROOT, dest, ignore=_IGNORED, symlinks=True, copy_function=shutil.copy2)
    return dest


def environment(scratch: Path) -> dict:
    env = dict(os.environ)
    env.setdefault("GAUSSVAE_SHARED", str(ROOT.parent / "shared"))
    env["XDG_CACHE_HOME"] = str(scratch / ".cache")  # a mutated rasterizer is built here, not in ~/.cache
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    env["ROS_DOMAIN_ID"] = os.environ.get("ROS_DOMAIN_ID") or str(random.randint(1, 100))
    return env


def run_tests(scratch: Path, args, timeout: float, first_failure: bool = True) -> tuple[str, float, str]:
    """``("pass" | "fail" | "timeout", seconds, output tail)`` of pytest on ``args`` in ``scratch``."""
    cmd = [sys.executable, "-m", "pytest", *args, "-q", "-p", "no:cacheprovider", "-p", "no:rerunfailures"]
    if first_failure:
        cmd.append("-x")
    start = time.monotonic()
    try:
        done = subprocess.run(cmd, cwd=scratch, env=environment(scratch), capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"").decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        return "timeout", time.monotonic() - start, out[-2000:]
    out = done.stdout + done.stderr
    if done.returncode == 5:  # nothing collected: the selection is wrong, not a kill
        return "error", time.monotonic() - start, out[-2000:]
    return ("pass" if done.returncode == 0 else "fail"), time.monotonic() - start, out[-2000:]


def check_texts(mutations) -> list[str]:
    problems = []
    for m in mutations:
        path = ROOT / m.path
        if not path.exists():
            problems.append(f"{m.name}: {m.path} does not exist")
            continue
        count = path.read_text().count(m.old)
        if count != 1:
            problems.append(f"{m.name}: the text to mutate occurs {count} times in {m.path}")
    names = [m.name for m in mutations]
    problems += [f"duplicate mutation name {n}" for n in sorted({n for n in names if names.count(n) > 1})]
    return problems


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", action="append", default=[], metavar="NAME", help="run this mutation only (repeatable)")
    ap.add_argument("--list", action="store_true", help="list the mutations and their tests")
    ap.add_argument("--check-texts", action="store_true", help="only check that every mutation still applies")
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds per mutation's test run (default 300)")
    ap.add_argument("--threshold", type=float, default=0.95, help="lowest acceptable kill rate (default 0.95)")
    ap.add_argument("--no-baseline", action="store_true", help="skip the run of the unmutated tests")
    ap.add_argument("--keep", action="store_true", help="keep the scratch copy (its path is printed)")
    args = ap.parse_args(argv)

    mutations = list(MUTATIONS)
    if args.only:
        unknown = sorted(set(args.only) - {m.name for m in mutations})
        if unknown:
            print(f"unknown mutation(s): {', '.join(unknown)} (see --list)", file=sys.stderr)
            return 2
        mutations = [m for m in mutations if m.name in args.only]
    if args.list:
        for m in mutations:
            print(f"{m.name:36s} {m.path}: {m.what}\n{'':36s} tests: {' '.join(m.tests)}")
        print(f"{len(mutations)} mutations")
        return 0
    problems = check_texts(mutations)
    if problems or args.check_texts:
        print("\n".join(problems) or f"all {len(mutations)} mutations apply")
        return 2 if problems else 0

    scratch = scratch_copy(Path(tempfile.mkdtemp(prefix="gaussvae-mutation-")) / "tree")
    print(f"scratch copy: {scratch}", flush=True)
    try:
        if not args.no_baseline:
            selections = list(dict.fromkeys(m.tests for m in mutations))
            for sel in selections:
                status, seconds, out = run_tests(scratch, sel, args.timeout * 2, first_failure=False)
                if status != "pass":
                    print(f"baseline {status} for {' '.join(sel)} ({seconds:.0f} s): the unmutated tree must pass"
                          f"\n{out}", file=sys.stderr)
                    return 2
            print(f"baseline: {len(selections)} test selections pass unmutated", flush=True)
        results = []
        for i, m in enumerate(mutations, 1):
            target = scratch / m.path
            original = target.read_text()
            stat = target.stat()
            target.write_text(original.replace(m.old, m.new, 1))
            try:
                status, seconds, out = run_tests(scratch, m.tests, args.timeout)
            finally:
                target.write_text(original)
                os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))
            verdict = {"fail": "killed", "timeout": "killed (timeout)", "pass": "SURVIVED", "error": "ERROR"}[status]
            results.append((m, status))
            print(f"[{i:2d}/{len(mutations)}] {verdict:16s} {m.name} ({seconds:.0f} s)"
                  + (f"  {_last_line(out)}" if status in ("fail", "error") else ""), flush=True)
            if status == "error":
                print(out, file=sys.stderr)
        killed = sum(status in ("fail", "timeout") for _, status in results)
        errors = [m for m, status in results if status == "error"]
        survivors = [m for m, status in results if status == "pass"]
        rate = killed / max(1, len(results) - len(errors))
        print(f"\nkilled {killed} of {len(results) - len(errors)} mutations: {100 * rate:.1f} % "
              f"(threshold {100 * args.threshold:.0f} %)")
        for m in survivors:
            print(f"  survived: {m.name} ({m.path}: {m.what}; tests {' '.join(m.tests)})")
        for m in errors:
            print(f"  error: {m.name}: its tests were not collected ({' '.join(m.tests)})")
        if errors:
            return 2
        return 0 if rate >= args.threshold else 1
    finally:
        if args.keep:
            print(f"kept {scratch}")
        else:
            shutil.rmtree(scratch.parent, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
