"""sentence-transformers' own OpenVINO backend on a model folder, timed as bench_encode.py times
semsearch's rows; run by a Python that has optimum-intel (it pins other torch and transformers
versions than semsearch's, so it lives in a virtual environment of its own).

    PYTHON peer_openvino.py MODEL THREADS ROUNDS TEXTS_JSON

Prints one JSON line: {row name: {"seconds": [...], "embeddings": [[...], ...]}}, one row for
OpenVINO at its default precision on this CPU and one with float32 asked for.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time


def main() -> int:
    from sentence_transformers import SentenceTransformer

    model, threads, rounds, texts = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), json.loads(sys.argv[4])
    rows = {}
    with tempfile.TemporaryDirectory() as cache:
        for name, hint in (
            ("sentence-transformers openvino default", None),
            ("sentence-transformers openvino f32", "f32"),
        ):
            config: dict[str, object] = {"INFERENCE_NUM_THREADS": threads, "CACHE_DIR": cache}
            if hint:
                config["INFERENCE_PRECISION_HINT"] = hint
            st = SentenceTransformer(model, device="cpu", backend="openvino", model_kwargs={"ov_config": config})
            embeddings = st.encode(texts, batch_size=16)
            seconds = []
            for _ in range(rounds):
                started = time.perf_counter()
                st.encode(texts, batch_size=16)
                seconds.append(time.perf_counter() - started)
            rows[name] = {"seconds": seconds, "embeddings": embeddings.tolist()}
    print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
