"""``gaussvae eval``: rate-distortion of the Gaussian codecs against JPEG / WebP / AVIF at byte budgets.

Shaped like CompressAI's ``eval_model``: :func:`setup_args` builds the parser, :func:`main` takes
``argv`` and prints the results, and the evaluation itself lives in :mod:`gaussvae_ros.eval`, apart
from the models. Also runs as ``python -m gaussvae_ros.cli.eval_commands``.

Examples::

    gaussvae eval --images photos/ --budgets 256 512 1024 --json --plot rd.png
    gaussvae eval --images photos/ --methods gaussians-rd webp-scaled --long-side 256 --budgets 2048 4096 8192
    gaussvae eval --bag recording/ --topic /camera/image_raw --every 10   # frames at the encoder's working size
"""

from __future__ import annotations

import argparse
import json
import sys

METHODS = ("gaussians-rd", "gaussians", "jpeg", "webp", "avif", "jpeg-scaled", "webp-scaled", "avif-scaled", "ours")
PILLOW_METHODS = ("jpeg", "webp", "avif", "jpeg-scaled", "webp-scaled", "avif-scaled")


def _int_at_least(text: str, lowest: int, kind: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a {kind} integer, got {text!r}") from None
    if value < lowest:
        raise argparse.ArgumentTypeError(f"expected a {kind} integer, got {text!r}")
    return value


def _positive_int(text: str) -> int:
    return _int_at_least(text, 1, "positive")


def _non_negative_int(text: str) -> int:
    return _int_at_least(text, 0, "non-negative")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--images", nargs="+", metavar="PATH",
                        help="image files and/or directories of images (not recursive)")
    source.add_argument("--bag", metavar="BAG",
                        help="a recording: its frames are evaluated at the working size the encoder node fits "
                             "(long side --long-side, default the pipeline's 256, area-averaged, never enlarged)")
    parser.add_argument("--topic", default=None,
                        help="--bag: the image topic (default: the recording's only image topic)")
    parser.add_argument("--every", type=_positive_int, default=1, metavar="N", help="--bag: every N-th frame")
    parser.add_argument("--budgets", nargs="+", type=_positive_int, default=[256, 512, 1024], metavar="BYTES",
                        help="byte budgets per image (default: 256 512 1024)")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS), metavar="NAME",
                        help=f"methods to compare (default: all of {', '.join(METHODS)})")
    parser.add_argument("--model", default=None,
                        help="VAE model file for the 'ours' latent codec (default: the model shipped with the package)")
    parser.add_argument("--refine-iters", type=_non_negative_int, default=150, metavar="N",
                        help="'ours': refine each latent against the image for N steps before coding "
                             "(gaussvae_ros.codecs.latent.refine; 0 = the encoder's latent as is)")
    parser.add_argument("--tiles", nargs="+", type=int, default=[1, 2, 4, 8], choices=[1, 2, 4, 8, 16], metavar="T",
                        help="'ours': tile counts to choose from per image and budget, one latent per tile "
                             "(gaussvae_ros.codecs.latent.tiles; default: 1 2 4 8)")
    parser.add_argument("--gaussians-counts", nargs="+", type=_positive_int, default=None, metavar="N",
                        help="Gaussian counts of the 'gaussians' grid (default: 16 24 32 48 64 96 128 192 256 384 512)")
    parser.add_argument("--gaussians-fill", action="store_true",
                        help="also try, per bit-depth preset, the largest Gaussian count that fills each budget "
                             "(one more fit per budget and preset)")
    parser.add_argument("--long-side", type=_positive_int, default=None,
                        help="resize each image so its long side has this many pixels (default 192 for --images, "
                             "Lanczos; the encoder's working size for --bag)")
    parser.add_argument("--max-iters", type=_positive_int, default=None,
                        help="fitting iterations (default: the fitter's, FitConfig.max_iters)")
    parser.add_argument("--threads", type=_positive_int, default=1,
                        help="CPU threads for fitting and rendering, torch included (default 1)")
    parser.add_argument("--seed", type=int, default=0, help="fitting seed")
    parser.add_argument("--fit-cache", default=None, metavar="DIR",
                        help="keep Gaussian fits here and reuse them in later runs (keyed by image, count, "
                             "iterations, seed; clear it when the fitter changes)")
    parser.add_argument("--limit", type=_positive_int, default=None, help="evaluate only the first N images")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("--per-image", action="store_true", help="add every image's score and setting to the JSON")
    parser.add_argument("--plot", default=None, metavar="FILE", help="write a rate-distortion plot (PNG)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def setup_args() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gaussvae eval", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return parser


def build_methods(args: argparse.Namespace):
    """The selected methods, and a note for each selected one that cannot run."""
    from gaussvae_ros.eval import DEFAULT_COUNTS, GaussianMethod, RDGaussianMethod, load_latent_method, pillow_codecs

    methods, notes = [], {}
    if "gaussians" in args.methods:
        methods.append(GaussianMethod(args.gaussians_counts or DEFAULT_COUNTS, fill=args.gaussians_fill))
    if "gaussians-rd" in args.methods:
        methods.append(RDGaussianMethod())
    codecs, codec_notes = pillow_codecs([m for m in PILLOW_METHODS if m in args.methods])
    methods += codecs
    notes.update(codec_notes)
    if "ours" in args.methods:
        latent, reason = load_latent_method(args.model, args.refine_iters, tuple(args.tiles))
        if latent is None and args.model:  # a model asked for by name that cannot run is an error, not a note
            raise ValueError(f"--model {args.model}: {reason}")
        if latent is None:
            notes["ours"] = f"omitted: {reason}"
        else:
            methods.append(latent)
    if not methods:
        raise ValueError("none of the selected methods can run: "
                         + "; ".join(f"{k}: {v}" for k, v in notes.items()))
    return methods, notes


def run(args: argparse.Namespace) -> int:
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(args.threads)  # torch's own ops too, not only the compiled kernels
    try:
        return _run(args)
    finally:
        torch.set_num_threads(previous)


def _run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from gaussvae_ros.core import FitConfig
    from gaussvae_ros.eval import FitOptions, evaluate, format_table, list_images, load_image, plot_rd
    from gaussvae_ros.pipeline import DEFAULT_LONG_SIDE

    methods, notes = build_methods(args)
    damage: list = []
    if args.bag:
        images = bag_frames(args.bag, args.topic, args.every, args.long_side or DEFAULT_LONG_SIDE, damage)[:args.limit]
    else:
        paths = list_images(args.images)[:args.limit]
        images = [(p.stem, load_image(p, args.long_side or 192)) for p in paths]
    bar = tqdm(total=len(images) * len(methods), desc="eval", file=sys.stderr, disable=args.quiet, leave=False,
               unit="step")

    def progress(step: int, total: int, text: str) -> None:
        bar.set_postfix_str(text, refresh=False)
        bar.update(step - bar.n)

    try:
        options = FitOptions(args.max_iters, args.seed, args.threads, args.fit_cache)
        report = evaluate(images, methods, args.budgets, options, progress=progress, per_image=args.per_image)
    finally:
        bar.close()
    report["notes"] = notes
    report["settings"] = {"long_side": args.long_side or (DEFAULT_LONG_SIDE if args.bag else 192),
                          "source": {"bag": args.bag, "topic": args.topic, "every": args.every} if args.bag else "images",
                          "max_iters": args.max_iters or FitConfig().max_iters,
                          "seed": args.seed,
                          "gaussian_counts": next((list(m.counts) for m in methods if m.name == "gaussians"), None),
                          "gaussians_fill": bool(args.gaussians_fill),
                          "resize": "the encoder's working image (area)" if args.bag else "Pillow Lanczos on uint8",
                          "metrics": "scikit-image PSNR / SSIM, data range 255; means over images"}
    if damage:
        report["damaged"], report["frames_lost"] = damage[0]["damaged"], damage[0]["lost"]
    if args.plot:
        report["plot"] = str(plot_rd(report, args.plot))
    if args.json:
        print(json.dumps(report))
    else:
        print(format_table(report))
        for name, note in notes.items():
            print(f"{name}: {note}")
    if damage:  # evaluated on the readable frames; the damaged parts of the recording said and flagged
        from .replay_commands import EXIT_DAMAGED, print_damage

        print_damage("gaussvae eval", damage[0]["damaged"], damage[0]["lost"])
        return EXIT_DAMAGED
    return 0


def bag_frames(bag: str, topic: str | None, every: int, long_side: int, damage: list | None = None) -> list:
    """Every ``every``-th decodable frame of ``topic`` as ``(name, uint8 working image)``: the image the
    encoder node fits (:func:`gaussvae_ros.pipeline.prepare_frame`). Frames that cannot be decoded or
    fitted are skipped (reported on stderr); none at all is an error. Damaged parts of the recording
    are read past; their ``BagReader.damage_report`` is appended to ``damage`` (when given)."""
    from gaussvae_ros.bag.reader import BagReader, FrameError  # here, not at the top: see cli/__init__
    from gaussvae_ros.core import to_float_image, to_uint8
    from gaussvae_ros.pipeline import MemorySettings, prepare_frame

    settings = MemorySettings.make(long_side=long_side)
    with BagReader(bag) as reader:
        topics = reader.image_topics
        if topic is None and len(topics) != 1:
            raise ValueError(f"{bag} has {len(topics)} image topics ({', '.join(topics) or 'none'}): pick one with --topic")
        topic = topic or topics[0]
        if topic not in topics:
            raise ValueError(f"{bag} has no image topic {topic!r} (image topics: {', '.join(topics) or 'none'})")
        frames, skipped = [], 0
        for index, frame in enumerate(reader.frames([topic])):
            if index % every:
                continue
            if isinstance(frame, FrameError):
                skipped += 1
                continue
            try:
                work = prepare_frame(frame.image, settings)[0]
            except ValueError:  # a frame too thin to fit
                skipped += 1
                continue
            frames.append((f"{frame.stamp_ns}", to_uint8(to_float_image(work))))
        report = reader.damage_report([topic])
        if report is not None and damage is not None:
            damage.append(report)
    if skipped:
        print(f"gaussvae eval: {skipped} frames of {topic} could not be decoded and were skipped", file=sys.stderr)
    if not frames:
        raise ValueError(f"no decodable frame on {topic} in {bag}")
    return frames


def register(subparsers) -> None:
    parser = subparsers.add_parser("eval", help="rate-distortion against JPEG / WebP / AVIF at byte budgets",
                                   description=__doc__.splitlines()[0])
    add_arguments(parser)
    parser.set_defaults(func=run)


def main(argv: list[str] | None = None) -> int:
    args = setup_args().parse_args(argv)
    try:
        return run(args)
    except (ValueError, FileNotFoundError, OSError) as exc:
        print(f"gaussvae eval: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
