"""Compare semsearch's encoder with SentenceTransformer.encode on one model folder.

    python scripts/check_parity.py MODEL [--texts DIR] [--device cpu|cuda] [--fp32]

MODEL is a local sentence-transformers folder or a hub id (with the real
lier007/xiaobu-embedding-v2 this checks the full model). The texts are the chunks of DIR
(default: sample_docs/). Prints the largest absolute difference and the lowest cosine
similarity between the two outputs; exits 1 when the difference is over --tolerance.
Needs sentence-transformers installed (pip install 'semsearch[test]').
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("--texts", type=Path, default=Path(__file__).resolve().parents[1] / "sample_docs")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--fp32", action="store_true", help="on CUDA, run semsearch in fp32 too")
    parser.add_argument("--tolerance", type=float, default=1e-5)
    args = parser.parse_args()

    from sentence_transformers import SentenceTransformer

    from semsearch.documents.chunking import chunk_text
    from semsearch.documents.reading import decode
    from semsearch.documents.walk import walk
    from semsearch.embedding.encoder import Encoder

    encoder = Encoder.load(args.model, device=args.device, fp32=args.fp32)
    texts = []
    for path in walk([args.texts]).files:
        text, _ = decode(path.read_bytes())
        chunks = chunk_text(text, encoder.token_spans, min(256, encoder.max_text_tokens), 32)
        texts += [c.text for c in chunks]
    texts += ["你是谁？", "", "长" * 2000]  # a question, an empty text, one over the token limit

    started = time.perf_counter()
    ours = encoder.encode(texts)
    ours_s = time.perf_counter() - started
    reference = SentenceTransformer(args.model, device=args.device)
    started = time.perf_counter()
    theirs = reference.encode(texts, convert_to_numpy=True)
    theirs_s = time.perf_counter() - started

    difference = float(np.abs(ours - theirs).max())
    cosine = (ours * theirs).sum(1) / np.maximum(np.linalg.norm(ours, axis=1) * np.linalg.norm(theirs, axis=1), 1e-12)
    print(f"model:           {args.model}")
    print(f"device, dtype:   {encoder.device}, {str(encoder.dtype).removeprefix('torch.')}")
    print(f"texts:           {len(texts)} (dimension {encoder.dimension})")
    print(f"max abs diff:    {difference:.3e}")
    print(f"min cosine:      {float(cosine.min()):.8f}")
    print(f"seconds:         semsearch {ours_s:.2f}, sentence-transformers {theirs_s:.2f}")
    import torch

    if encoder.dtype == torch.float32:
        ok, rule = difference <= args.tolerance, f"fp32: max abs diff <= {args.tolerance:g}"
    else:  # half precision cannot match fp32 to 1e-5; it must point the same way
        ok, rule = float(cosine.min()) > 0.999, "fp16: min cosine > 0.999"
    print(f"result:          {'OK' if ok else 'FAIL'} ({rule})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
