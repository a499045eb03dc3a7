"""`ftstudio predict`: a trained or exported model on new images — labels, probabilities, heat maps."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="predict the class of new images with a run or an exported model",
                       description="SOURCE is a run folder, a checkpoint file, or an export folder (signature.json "
                                   "with model.onnx or model.pt2: predicted through onnxruntime / torch.export, "
                                   "what you deploy). PATHs are images or folders (searched recursively). "
                                   "Unreadable files are skipped and named on stderr.")
    p.add_argument("source", help="run folder, checkpoint (.pt) or export folder")
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders")
    p.add_argument("--top-k", type=int, default=None, metavar="K",
                   help="how many classes to list per image, best first: a plain line then reads PATH, then K "
                        "label/probability pairs (default: the best one alone; 3 in --json's \"top\")")
    p.add_argument("--json", action="store_true", help='one JSON object per line: {"path", "label", "probability", '
                                                       '"top": [{"label", "probability"}, …]}')
    p.add_argument("--explain", metavar="DIR", help="write a heat-map PNG per image into DIR (Grad-CAM for conv "
                                                   "nets, occlusion otherwise), named after the image")
    p.add_argument("--checkpoint", choices=("best", "last"), default="best", help="for a run folder")
    p.add_argument("--batch-size", type=int, default=64, help="images per batch (default 64)")
    p.set_defaults(handler=predict)


def predict(args: argparse.Namespace) -> int:
    from ftstudio.core import messages
    from ftstudio.core.datasets.decode import IMAGE_SUFFIXES
    from ftstudio.core.errors import InputError
    from ftstudio.core.inference.predict import image_paths, load_predictor, predict_batches

    if args.top_k is not None and args.top_k < 1:
        raise InputError("--top-k must be at least 1")
    if args.batch_size < 1:
        raise InputError("--batch-size must be at least 1")
    explain_dir = _explain_dir(args.explain)
    predictor = load_predictor(args.source, args.checkpoint)
    files, skipped = image_paths(args.paths)
    for path, reason in skipped:
        print(f"skipped {path}: {reason}", file=sys.stderr)
    if not files:
        raise InputError(messages.PREDICT_NO_IMAGES.format(paths=", ".join(args.paths),
                                                           suffixes=", ".join(IMAGE_SUFFIXES)))
    bar = _bar(len(files))
    taken: set[str] = set()
    count, newly_skipped = 0, []
    try:
        for batch in predict_batches(predictor, files, args.top_k or 3, args.batch_size, newly_skipped,
                                     progress=(lambda done, total: bar.update(done - bar.n)) if bar else None):
            if explain_dir is not None:
                _explain(predictor, batch, explain_dir, taken)
            for p in batch:
                if bar is not None:
                    bar.clear()
                print(json.dumps(p.as_dict()) if args.json else _plain_line(p, args.top_k or 1),
                      flush=bar is not None)
            count += len(batch)
            while newly_skipped:
                path, reason = newly_skipped.pop(0)
                skipped.append((path, reason))
                print(f"skipped {path}: {reason}", file=sys.stderr)
    finally:
        if bar is not None:
            bar.close()
    if count == 0:
        raise InputError(messages.PREDICT_NONE_READABLE.format(count=len(files)))
    if skipped:
        print(f"{len(skipped)} path(s) skipped", file=sys.stderr)
    if explain_dir is not None:
        print(f"heat maps: {explain_dir}", file=sys.stderr)
    return 0


def _plain_line(p, k: int) -> str:
    """PATH, then the best K label/probability pairs, tab-separated: the first three columns never
    change. A label (an export's signature.json may hold any text) cannot add a column or a line."""
    from ftstudio.core.messages import escape_controls

    pairs = p.top[:k] if k > 1 else ((p.label, p.probability),)
    return "\t".join([str(p.path), *(f"{escape_controls(label)}\t{prob:.4f}" for label, prob in pairs)])


def _explain_dir(raw: str | None) -> Path | None:
    if raw is None:
        return None
    import tempfile

    from ftstudio.core import messages
    from ftstudio.core.errors import InputError

    folder = Path(raw).expanduser()
    try:  # fail before predicting, not after the first batch
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise InputError(messages.EXPLAIN_NOT_WRITABLE.format(path=folder, reason=exc.strerror or exc)) from None
    return folder


def _explain(predictor, batch, folder: Path, taken: set[str]) -> None:
    import numpy as np

    from ftstudio.core.inference.explain import explain, explanation_name, write_overlay

    images = np.stack([predictor.decode(p.path) for p in batch])
    heat, _method = explain(predictor, images, [p.index for p in batch])
    for p, h in zip(batch, heat):
        write_overlay(p.path, h, folder / explanation_name(p.path, taken))


def _bar(total: int):
    if not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc="predicting", unit="image", file=sys.stderr, leave=False, dynamic_ncols=True)
