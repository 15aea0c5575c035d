#!/usr/bin/env python3
# ruff: noqa: B023, E741, SIM105  (a research probe: lambdas run inside their loop, short names)
"""What Milvus Lite's real engine does, checked by running it: the facts behind
docs/milvus-lite-facts.md, for the planned Milvus backend. Not part of semsearch or its tests.

Set-up, in a virtual environment of its own (about 3.5 min for every section on 2 cores):
    pip install 'milvus-lite==2.5.1' pymilvus 'setuptools<81' numpy

Usage:  python scripts/milvus_probe.py [SECTION ...]      (default: all)
Env:    PROBE_DIR (data dir), PROBE_ANALYZER (JSON analyzer_params for "terms")
Sections: versions schema bm25 hybrid filters literals crud consistency twoproc cleanup bench
Data lives under $PROBE_DIR (default /tmp/milvus-spike/data); every section
uses its own .db file so sections are independent.  Every child process is
ended by the section that started it.
"""

import json
import logging
import os
import shutil
import signal
import statistics
import subprocess
import sys
import textwrap
import time
import traceback

import numpy as np
from pymilvus import AnnSearchRequest, DataType, Function, FunctionType, MilvusClient, RRFRanker

logging.getLogger("pymilvus").setLevel(logging.CRITICAL)  # silence RPC tracebacks (after import!)

PROBE_DIR = os.environ.get("PROBE_DIR", "/tmp/milvus-spike/data")
os.makedirs(PROBE_DIR, exist_ok=True)
RNG = np.random.default_rng(0)
# analyzer for the "terms" field everywhere except where a section sets its own;
# milvus-lite 3.x has no whitespace tokenizer: PROBE_ANALYZER='{"tokenizer": "standard"}'
DEFAULT_ANALYZER = json.loads(os.environ.get("PROBE_ANALYZER", '{"tokenizer": "whitespace"}'))


def hdr(t):
    print("\n" + "=" * 8 + " " + t + " " + "=" * 8, flush=True)


def attempt(label, fn):
    """Run fn(); print OK + result or ERR + exception text. Return (ok, res)."""
    try:
        r = fn()
        rs = "" if r is None else f" -> {r}"
        if len(rs) > 600:
            rs = rs[:600] + f" ...[{len(rs)} chars]"
        print(f"  OK   {label}{rs}", flush=True)
        return True, r
    except Exception as e:  # noqa: BLE001
        msg = str(e).replace("\n", " ")
        print(f"  ERR  {label} -> {type(e).__name__}: {msg}", flush=True)
        return False, e


def fresh_db(name):
    """Return path of a fresh .db (name must match ^[A-Za-z0-9.\\-_]+$, <=36 chars)."""
    p = os.path.join(PROBE_DIR, name)
    if os.path.isdir(p):
        shutil.rmtree(p)
    elif os.path.exists(p):
        os.remove(p)
    return p


def close_db(c, db):
    """pymilvus 3.x MilvusClient.close() does NOT stop the milvus-lite server
    (it never calls release_server); do it explicitly so the lock is freed."""
    c.close()
    try:
        from milvus_lite.server_manager import server_manager_instance

        server_manager_instance.release_server(db)
    except ImportError:
        pass


def milvus_children():
    """PIDs + cmdlines of running milvus-lite server processes."""
    out = subprocess.run(["ps", "-eo", "pid,ppid,args"], capture_output=True, text=True).stdout.splitlines()[1:]
    res = []
    for line in out:
        pid, ppid, args = line.strip().split(None, 2)
        if "milvus_lite/lib/milvus" in args or args.split()[0].endswith("/milvus"):
            res.append((int(pid), int(ppid), args))
    return res


def norm_terms(text):
    """Client-side folding the backend would do: NFKC + casefold."""
    import unicodedata

    return unicodedata.normalize("NFKC", text).casefold()


def make_schema(client, dim=384, analyzer=None, bm25=True, varchar_len=4096):
    s = client.create_schema(auto_id=False, enable_dynamic_field=False)
    s.add_field("id", DataType.INT64, is_primary=True)
    s.add_field("path", DataType.VARCHAR, max_length=varchar_len)
    s.add_field("lang", DataType.VARCHAR, max_length=16)
    s.add_field("mtime", DataType.DOUBLE)
    s.add_field("size", DataType.INT64)
    s.add_field("vec", DataType.FLOAT_VECTOR, dim=dim)
    if bm25:
        s.add_field(
            "terms",
            DataType.VARCHAR,
            max_length=65535,
            enable_analyzer=True,
            analyzer_params=analyzer or DEFAULT_ANALYZER,
        )
        s.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
        s.add_function(
            Function(
                name="bm25", function_type=FunctionType.BM25, input_field_names=["terms"], output_field_names=["sparse"]
            )
        )
    return s


def make_index(client, dense="FLAT", metric="COSINE", params=None, bm25=True):
    ip = client.prepare_index_params()
    ip.add_index(field_name="vec", index_type=dense, metric_type=metric, params=params or {})
    if bm25:
        ip.add_index(field_name="sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
    return ip


def create(client, name, **kw):
    if client.has_collection(name):
        client.drop_collection(name)
    dim = kw.pop("dim", 384)
    analyzer = kw.pop("analyzer", None)
    bm25 = kw.pop("bm25", True)
    client.create_collection(
        name,
        schema=make_schema(client, dim, analyzer, bm25),
        index_params=make_index(client, bm25=bm25, **kw),
        consistency_level="Strong",
    )


def unit(n, dim):
    v = RNG.standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def rows(ids, dim=384, terms=None, paths=None, mtimes=None):
    vecs = unit(len(ids), dim)
    out = []
    for j, i in enumerate(ids):
        out.append(
            {
                "id": int(i),
                "path": paths[j] if paths else f"docs/f{i}.md",
                "lang": "zh" if i % 2 else "en",
                "mtime": float(mtimes[j]) if mtimes is not None else 1.7e9 + i,
                "size": int(i * 10),
                "vec": vecs[j].tolist(),
                "terms": terms[j] if terms else f"w{i % 97} w{i % 13} common",
            }
        )
    return out


# ----------------------------------------------------------------- sections
def s_versions():
    hdr("versions")
    import pymilvus

    try:
        import milvus_lite

        lv = milvus_lite.__version__
    except Exception as e:  # noqa: BLE001
        lv = f"import failed: {e}"
    print(
        "  python",
        sys.version.split()[0],
        "| pymilvus",
        pymilvus.__version__,
        "| milvus-lite",
        lv,
        "| numpy",
        np.__version__,
    )
    db = fresh_db("ver.db")
    c = MilvusClient(db)
    attempt("get_server_version()", lambda: c.get_server_version())
    attempt("get_server_type()", lambda: c.get_server_type())
    close_db(c, db)
    # .db file-name rules (lite 2.5.x: ^[a-zA-Z0-9.\-_]+$ and <= 36 chars)
    for name in ("索引.db", "a" * 34 + ".db", "a" * 33 + ".db"):

        def f(name=name):
            p = fresh_db(name)
            c2 = MilvusClient(p)
            close_db(c2, p)
            return "opened"

        attempt(f"open db named {name!r}", f)


def s_schema():
    hdr("1. schema / analyzers / index types")
    db = fresh_db("schema.db")
    c = MilvusClient(db)

    # VARCHAR max_length limits
    for L in (4096, 65535, 65536, 1048576):

        def f(L=L):
            s = c.create_schema(auto_id=False)
            s.add_field("id", DataType.INT64, is_primary=True)
            s.add_field("p", DataType.VARCHAR, max_length=L)
            s.add_field("v", DataType.FLOAT_VECTOR, dim=4)
            n = f"vc_{L}"
            if c.has_collection(n):
                c.drop_collection(n)
            c.create_collection(n, schema=s)
            return "created"

        attempt(f"VARCHAR max_length={L}", f)

    # does max_length get enforced on insert?
    def over():
        c.insert("vc_4096", [{"id": 1, "p": "x" * 4097, "v": [0.1] * 4}])
        got = c.get("vc_4096", ids=[1], output_fields=["p"])
        return f"accepted; read back len={len(got[0]['p'])}"

    attempt("insert 4097-char string into max_length=4096", over)

    def multibyte():
        c.insert("vc_4096", [{"id": 2, "p": "中" * 2000, "v": [0.1] * 4}])  # 6000 bytes
        got = c.get("vc_4096", ids=[2], output_fields=["p"])
        return f"accepted; read back len={len(got[0]['p'])}"

    attempt(
        "insert 70000-char string into max_length=65535 field",
        lambda: c.insert("vc_65535", [{"id": 1, "p": "y" * 70000, "v": [0.1] * 4}]),
    )
    attempt("insert 2000 CJK chars (6000 bytes) into max_length=4096", multibyte)

    # dims
    for d in (1792, 384):
        attempt(f"FLOAT_VECTOR dim={d} + BM25 function schema", lambda d=d: create(c, f"dim_{d}", dim=d) or "created")

    # analyzers
    for an in (
        {"type": "standard"},
        {"tokenizer": "whitespace"},
        {"tokenizer": "standard"},
        {"type": "chinese"},
        {"tokenizer": "jieba"},
        {"type": "english"},
        {"tokenizer": "whitespace", "filter": ["lowercase"]},
    ):
        n = (
            "an_"
            + json.dumps(an, sort_keys=True).translate(str.maketrans({c_: "_" for c_ in ' {}":,[]'})).strip("_")[:40]
        )
        attempt(f"analyzer_params={an}", lambda an=an, n=n: create(c, n, analyzer=an) or "created")
    attempt(
        "run_analyzer('python 3.12 c++ 中文', {'tokenizer':'whitespace'})",
        lambda: c.run_analyzer("python 3.12 c++ 中文", analyzer_params={"tokenizer": "whitespace"}),
    )

    # dense index types
    for it, params in (
        ("FLAT", {}),
        ("IVF_FLAT", {"nlist": 128}),
        ("HNSW", {"M": 16, "efConstruction": 200}),
        ("AUTOINDEX", {}),
        ("DISKANN", {}),
        ("IVF_SQ8", {"nlist": 128}),
        ("IVF_PQ", {"nlist": 128, "m": 8}),
        ("SCANN", {"nlist": 128}),
    ):

        def f(it=it, params=params):
            n = f"idx_{it}"
            create(c, n, dense=it, params=params)
            d = c.describe_index(n, "vec")
            return {k: d.get(k) for k in ("index_type", "metric_type", "M", "nlist") if k in d}

        attempt(f"dense index {it} {params}", f)
    for m in ("COSINE", "IP", "L2"):
        attempt(f"dense FLAT metric {m}", lambda m=m: create(c, f"metric_{m}", metric=m) or "created")

    # sparse index variants
    for it, metric in (
        ("SPARSE_INVERTED_INDEX", "BM25"),
        ("SPARSE_WAND", "BM25"),
        ("AUTOINDEX", "BM25"),
        ("SPARSE_INVERTED_INDEX", "IP"),
    ):

        def f(it=it, metric=metric):
            n = f"sp_{it}_{metric}"
            if c.has_collection(n):
                c.drop_collection(n)
            ip = c.prepare_index_params()
            ip.add_index(field_name="vec", index_type="FLAT", metric_type="COSINE")
            ip.add_index(
                field_name="sparse",
                index_type=it,
                metric_type=metric,
                params={"inverted_index_algo": "DAAT_MAXSCORE"}
                if it == "SPARSE_INVERTED_INDEX" and metric == "BM25"
                else {},
            )
            c.create_collection(n, schema=make_schema(c), index_params=ip)
            return c.describe_index(n, "sparse")

        attempt(f"sparse index {it} metric={metric}", f)
    # does a non-FLAT index actually change anything? compare recall@10 vs numpy
    X = unit(5000, 384)
    Q = unit(20, 384)
    truth = np.argsort(-(Q @ X.T), axis=1)[:, :10]
    for it, params, sp in (
        ("FLAT", {}, {}),
        ("IVF_FLAT", {"nlist": 128}, {"nprobe": 1}),
        ("IVF_FLAT", {"nlist": 128}, {"nprobe": 128}),
        ("AUTOINDEX", {}, {}),
    ):

        def f(it=it, params=params, sp=sp):
            n = "rc_" + it
            create(c, n, dense=it, params=params, bm25=False)
            rr = rows(range(5000))
            for j, r in enumerate(rr):
                r["vec"] = X[j].tolist()
                r.pop("terms")
            for j in range(0, 5000, 1000):
                c.insert(n, rr[j : j + 1000])
            c.flush(n)
            t = time.perf_counter()
            res = c.search(
                n, data=Q.tolist(), anns_field="vec", limit=10, search_params={"metric_type": "COSINE", "params": sp}
            )
            dt = (time.perf_counter() - t) * 1000
            rec = np.mean([len(set(h["id"] for h in res[q]) & set(truth[q].tolist())) / 10 for q in range(len(Q))])
            return f"recall@10={rec:.3f} ({dt:.0f} ms for 20 queries)"

        attempt(f"recall {it} {params} search {sp} (5000x384)", f)
    close_db(c, db)


def bm25_search(c, coll, q, k=10, **kw):
    res = c.search(
        coll,
        data=[q],
        anns_field="sparse",
        limit=k,
        output_fields=["terms"],
        search_params={"metric_type": "BM25"},
        **kw,
    )
    return [(h["id"], round(h["distance"], 3)) for h in res[0]]


def s_bm25():
    hdr("2. BM25 over client pre-tokenised terms")
    db = fresh_db("bm25.db")
    c = MilvusClient(db)
    raw = {
        1: "Python 3.12 C++ 中文 分词",
        2: "ＰＹＴＨＯＮ　３．１２ Ｃ＋＋",  # full-width (NFKC -> python 3.12 c++)
        3: "python python python tutorial",
        4: "rust cargo 中文",
        5: "c# java kotlin 3.11",
        6: "node.js e-mail foo_bar x/y 你好世界",
    }
    for coll, an in (
        ("ws", {"tokenizer": "whitespace"}),
        ("std", {"type": "standard"}),
        ("stdtok", {"tokenizer": "standard"}),
        ("jieba", {"tokenizer": "jieba"}),
    ):
        print(f"  -- analyzer {an} (collection {coll}) --")
        ok, _ = attempt("create", lambda: create(c, coll, analyzer=an))
        if not ok:
            continue
        folded = {i: norm_terms(t) for i, t in raw.items()}
        c.insert(coll, rows(list(raw), terms=[folded[i] for i in raw]))
        for i, t in folded.items():
            print(f"     doc {i}: raw={raw[i]!r} folded={t!r}")
        if coll == "ws":
            attempt("run_analyzer on doc 1", lambda: c.run_analyzer(folded[1], analyzer_params=an))
        for q in (
            "python",
            "PYTHON",
            norm_terms("ＰＹＴＨＯＮ"),
            "c++",
            "c",
            "3.12",
            "3",
            "中文",
            "中",
            "分词",
            "node.js",
            "node",
            "foo_bar",
            "e-mail",
            "python 中文",
            "nonexistentword",
        ):
            attempt(f"search {q!r}", lambda q=q: bm25_search(c, coll, q))
    close_db(c, db)


def s_hybrid():
    hdr("3. hybrid_search dense+sparse RRF(60)")
    db = fresh_db("hybrid.db")
    c = MilvusClient(db)
    create(c, "h")
    n = 200
    terms = [("python " if i % 10 == 0 else "") + f"w{i % 7} filler" for i in range(n)]
    data = rows(range(n), terms=terms)
    c.insert("h", data)
    qv = data[5]["vec"]  # exact dense match = id 5

    dense = c.search("h", data=[qv], anns_field="vec", limit=5, search_params={"metric_type": "COSINE"})
    print("  dense top5:", [(h["id"], round(h["distance"], 3)) for h in dense[0]])
    print("  bm25  top5:", bm25_search(c, "h", "python", 5))

    def hy(filt=""):
        r1 = AnnSearchRequest(data=[qv], anns_field="vec", param={"metric_type": "COSINE"}, limit=20, expr=filt)
        r2 = AnnSearchRequest(data=["python"], anns_field="sparse", param={"metric_type": "BM25"}, limit=20, expr=filt)
        res = c.hybrid_search("h", [r1, r2], ranker=RRFRanker(60), limit=5, output_fields=["path"])
        return [(h["id"], round(h["distance"], 5)) for h in res[0]]

    attempt("hybrid_search RRF(60) limit=5", hy)
    attempt("hybrid_search with expr 'id >= 100' on both reqs", lambda: hy("id >= 100"))
    print(
        "  expected RRF score of rank1 in one list only: 1/61 =",
        round(1 / 61, 5),
        "; rank1 in both: 2/61 =",
        round(2 / 61, 5),
    )
    close_db(c, db)


ONE_EXPR = textwrap.dedent("""
    import sys, json, logging
    from pymilvus import MilvusClient
    logging.getLogger("pymilvus").setLevel(logging.CRITICAL)
    c = MilvusClient(sys.argv[1])
    kw = json.loads(sys.argv[3])
    c.load_collection("f")   # lite 3.x: collections come back 'released' after reopen
    try:
        r = c.query("f", filter=sys.argv[2], output_fields=["path"], limit=100, **kw)
        print("RESULT", sorted(x["path"] for x in r))
    except Exception as e:
        print("ERR", str(e).replace("\\n", " ")[:220])
""")


def s_filters():
    hdr("4. filter expressions")
    db = fresh_db("filters.db")
    c = MilvusClient(db)
    s = make_schema(c)
    s.add_field("dirs", DataType.ARRAY, element_type=DataType.VARCHAR, max_capacity=64, max_length=1024)
    if c.has_collection("f"):
        c.drop_collection("f")
    c.create_collection("f", schema=s, index_params=make_index(c), consistency_level="Strong")
    paths = [
        "docs/a.md",
        "docs/sub/b.md",
        "docsx/c.md",
        "docs0.md",
        "other/docs/d.md",
        "pct/100%/e.md",
        "pct/100x/f.md",
        "pct/100\\%/g.md",
        "us/a_b.md",
        "us/axb.md",
        "us/a\\_b.md",
        "quote/it's.md",
        'quote/say "hi".md',
        "back\\slash/g.md",
        "中文/文档.md",
        "docs/\U0010ffff.md",
    ]
    n = len(paths)
    rr = rows(range(n), paths=paths, mtimes=[1000 + 10 * i for i in range(n)])
    for r in rr:
        parts = r["path"].split("/")[:-1]
        r["dirs"] = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    c.insert("f", rr)
    print("  paths (python repr):", paths)

    def q(expr, **kw):
        r = c.query("f", filter=expr, output_fields=["path"], limit=100, **kw)
        return sorted(x["path"] for x in r)

    # NB: the strings below are shown as python repr, i.e. '\\' is ONE backslash
    for expr in (
        'path like "docs/%"',
        'path like "pct/100%"',  # % inside pattern = wildcard
        'path like "pct/100\\\\%%"',  # expr text: pct/100\\%%
        'path like "us/a_b%"',  # _ = single-char wildcard
        'path like "us/a\\\\_b%"',  # expr text: us/a\\_b%  (\\ -> one literal backslash)
        'path like "%.md"',
        'path like "%docs%"',
        'path like "中文/%"',
        "path like 'quote/it\\'s%'",
        'path like "quote/say \\"hi\\"%"',
        'path == "back\\\\slash/g.md"',
        'path >= "docs/" and path < "docs0"',  # exact prefix via range
        'array_contains(dirs, "docs")',
        'array_contains(dirs, "pct/100%")',
        'array_contains_any(dirs, ["docs/sub", "us"])',
        'path in ["docs/a.md", "us/a_b.md"]',
        'path != "docs/a.md" and path like "docs/%"',
        'path not in ["docs/a.md"] and path like "docs/%"',
        "id in [1, 3, 5]",
        "mtime >= 1020 and mtime < 1060",
        "1020 <= mtime < 1060",
        "1020.0 <= mtime < 1060.0",
        "mtime > 1020.5 and size <= 100",
        'path like "docs/%" and mtime > 1005',
        'lang == "zh" and (size > 20 or id == 0)',
        "not (id == 9)",
        'path like "docs/%" and not (path like "docs/sub/%")',
        'path not like "docs/%"',
    ):
        attempt(f"query {expr}", lambda e=expr: q(e))

    # pre-filter vs post-filter: 2000 rows, only 50 match; k=30 must give 30
    create(c, "pf")
    big = rows(range(2000), paths=[("keep/" if i % 40 == 0 else "drop/") + f"{i}.md" for i in range(2000)])
    for i in range(0, 2000, 500):
        c.insert("pf", big[i : i + 500])
    qv = unit(1, 384)[0].tolist()

    def k_hits(k, expr, field="vec", data=None):
        r = c.search("pf", data=[data or qv], anns_field=field, limit=k, filter=expr, output_fields=["path"])
        hits = r[0]
        assert all(h["entity"]["path"].startswith("keep/") for h in hits)
        return len(hits)

    attempt("dense k=30 filter 'path like \"keep/%\"' (50 of 2000 match)", lambda: k_hits(30, 'path like "keep/%"'))
    attempt("dense k=100 filter 'path like \"keep/%\"' (only 50 match)", lambda: k_hits(100, 'path like "keep/%"'))
    attempt(
        "bm25 k=30 filter 'path like \"keep/%\"' query 'common'",
        lambda: k_hits(30, 'path like "keep/%"', "sparse", "common"),
    )
    close_db(c, db)

    # risky expressions: each in its own process (some kill the server)
    print("  -- risky expressions, one subprocess each (60 s timeout) --")
    for expr, kw in (
        ('path like "us/a\\_b%"', {}),  # expr text: us/a\_b%
        ('path like "pct/100\\%%"', {}),  # expr text: pct/100\%%
        ('path == "us/a\\_b.md"', {}),
        ("path like {p}", {"filter_params": {"p": "docs/%"}}),
        ("id in {ids}", {"filter_params": {"ids": [1, 3]}}),
    ):
        t = time.time()
        try:
            p = subprocess.run(
                [sys.executable, "-c", ONE_EXPR, db, expr, json.dumps(kw)], capture_output=True, text=True, timeout=60
            )
            out = [l for l in p.stdout.splitlines() if l.startswith(("RESULT", "ERR"))]
            res = out[-1] if out else f"rc={p.returncode} no output"
        except subprocess.TimeoutExpired:
            res = "HUNG (killed after 60 s)"
        left = [x for x in milvus_children() if "filters.db" in x[2]]
        _kill_children([x[0] for x in left])
        print(
            f"  expr text {expr!s:32} {kw or ''} -> {res} [{time.time() - t:.1f}s]"
            + (f" leftover server killed: {left}" if left else ""),
            flush=True,
        )


def s_literals():
    hdr("4b. string literals: every character a file name may hold")
    db = fresh_db("literals.db")
    c = MilvusClient(db)
    create(c, "l")
    names = {
        "quotes": 'say "hi" it\'s',
        "backslashes": "a\\b\\",
        "wildcards": "100%_done",
        "TAB": "a\tb",
        "other C0": "".join(chr(i) for i in range(1, 32) if i not in (10, 13)),
        "DEL and C1": "\x7f" + "".join(chr(i) for i in range(0x80, 0xA0)),
        "bidi": "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c",
        "U+2028/9, BOM, U+FFFF": "\u2028\u2029\ufeff\uffff",
        "emoji, CJK ext. B": "😀👍🏽🇨🇳𠮷",
        "keywords": "and in like true json_contains(x, 1) {p} [x]",
        "escape-like text": "\\n\\r\\x41\\u0041\\101",
    }
    paths = ["/d/" + v for v in names.values()] + ["/d/a\rb", "/d/a\nb", "/d/arb", "/d/ax0db", "/d/au000db"]
    c.insert("l", rows(range(len(paths)), paths=paths))

    def literal(text):  # what semsearch writes: \ and " escaped, nothing else
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'

    def q(expr):
        return sorted(x["path"] for x in c.query("l", filter=expr, output_fields=["path"], limit=100))

    for kind, name in names.items():
        path, lit = "/d/" + name, literal("/d/" + name)
        ok = q(f"path == {lit}") == q(f"path >= {lit} and path <= {lit}") == q(f"path in [{lit}, 'zz']") == [path]
        print(f"  {'OK ' if ok else 'ERR'}  raw in a literal, by ==, range and in: {kind}", flush=True)
    for label, lit in (
        ("raw CR", '"/d/a\rb"'),
        ("raw LF", '"/d/a\nb"'),
        ("\\r", '"/d/a\\rb"'),
        ("\\x0d", '"/d/a\\x0db"'),
        ("\\u000d", '"/d/a\\u000db"'),
        ("backslash, raw LF", '"/d/a\\\nb"'),
        ("backslash, raw CR LF", '"/d/a\\\r\nb"'),
    ):
        t = time.time()
        attempt(f"path == {label}", lambda e=lit: q(f"path == {e}"))
        print(f"       ({time.time() - t:.3f} s)", flush=True)
    close_db(c, db)


def s_crud():
    hdr("5. delete / upsert / get / query / query_iterator / limits")
    db = fresh_db("crud.db")
    c = MilvusClient(db)
    create(c, "c")
    N = 20000
    t = time.time()
    for i in range(0, N, 2000):
        c.insert("c", rows(range(i, i + 2000)))
    print(f"  inserted {N} rows in {time.time() - t:.1f}s")
    attempt("get(ids=[1,2,99999])", lambda: [r["id"] for r in c.get("c", ids=[1, 2, 99999], output_fields=["path"])])
    attempt("query count(*)", lambda: c.query("c", filter="", output_fields=["count(*)"]))
    for lim in (16384, 16385, 20000):
        attempt(
            f"query(filter='id >= 0', limit={lim})",
            lambda lim=lim: len(c.query("c", filter="id >= 0", output_fields=["id"], limit=lim)),
        )
    attempt("query(filter='id >= 0') no limit", lambda: len(c.query("c", filter="id >= 0", output_fields=["id"])))
    attempt(
        "query(limit=100, offset=16300) [offset+limit=16400]",
        lambda: len(c.query("c", filter="id >= 0", output_fields=["id"], limit=100, offset=16300)),
    )
    attempt(
        "query(limit=100, offset=100)",
        lambda: [r["id"] for r in c.query("c", filter="id >= 0", output_fields=["id"], limit=3, offset=100)],
    )
    qv = unit(1, 384)[0].tolist()
    for k in (16384, 16385):
        attempt(f"search limit={k}", lambda k=k: len(c.search("c", data=[qv], anns_field="vec", limit=k)[0]))
    attempt(
        "search limit=10 offset=16380",
        lambda: len(c.search("c", data=[qv], anns_field="vec", limit=10, search_params={"offset": 16380})[0]),
    )

    def it():
        itr = c.query_iterator("c", batch_size=5000, filter="id >= 0", output_fields=["id", "path"])
        seen, batches = set(), 0
        while True:
            b = itr.next()
            if not b:
                itr.close()
                break
            batches += 1
            seen.update(r["id"] for r in b)
        return f"{len(seen)} distinct ids in {batches} batches"

    attempt("query_iterator(batch_size=5000) over 20000 rows", it)

    def it_lim():
        itr = c.query_iterator("c", batch_size=3000, limit=7000, filter="id >= 0", output_fields=["id"])
        n = 0
        while b := itr.next():
            n += len(b)
        itr.close()
        return n

    attempt("query_iterator(batch_size=3000, limit=7000)", it_lim)

    attempt("delete(ids=[0,1,2])", lambda: c.delete("c", ids=[0, 1, 2]))
    attempt("get after delete(ids)", lambda: c.get("c", ids=[0, 1, 2, 3], output_fields=["id"]))
    attempt("delete(filter='path like \"docs/f1%\"')", lambda: c.delete("c", filter='path like "docs/f1%"'))
    attempt("count after delete(filter)", lambda: c.query("c", filter="", output_fields=["count(*)"]))
    attempt("delete(filter='id in [5,6]')", lambda: c.delete("c", filter="id in [5,6]"))
    attempt("delete(filter='') (empty filter)", lambda: c.delete("c", filter=""))

    new = rows([3, 300000], terms=["upserted zzz", "brand new zzz"])
    new[0]["path"] = "docs/UPSERTED.md"
    attempt("upsert([id 3 existing, id 300000 new])", lambda: c.upsert("c", new))
    attempt("get(ids=[3,300000]) after upsert", lambda: c.get("c", ids=[3, 300000], output_fields=["path", "terms"]))
    attempt("bm25 'zzz' after upsert (sparse recomputed?)", lambda: bm25_search(c, "c", "zzz"))
    attempt("bm25 'w3' must not return old id 3 terms", lambda: 3 in [h for h, _ in bm25_search(c, "c", "w3", k=1000)])
    attempt("count after upsert", lambda: c.query("c", filter="", output_fields=["count(*)"]))

    def dup():
        r = rows([4])
        r[0]["path"] = "docs/DUPLICATE.md"
        c.insert("c", r)
        return (
            c.query("c", filter="id == 4", output_fields=["id", "path"]),
            c.query("c", filter="id == 4", output_fields=["count(*)"]),
            c.get("c", ids=[4], output_fields=["path"]),
        )

    attempt("insert duplicate PK 4 (already exists) -> query/count/get", dup)

    def del_reins():
        c.delete("c", ids=[8])
        r = rows([8])
        r[0]["path"] = "docs/REINSERTED.md"
        c.insert("c", r)
        return c.query("c", filter="id == 8", output_fields=["path"])

    attempt("delete(ids=[8]) then insert id 8 again", del_reins)

    def big_del():
        ids = [r["id"] for r in c.query("c", filter="id >= 2000", output_fields=["id"], limit=16384)]
        t = time.time()
        res = c.delete("c", ids=ids)
        return (
            f"{len(ids)} ids requested, delete returned {len(res)} in "
            f"{time.time() - t:.2f}s; count now "
            f"{c.query('c', filter='', output_fields=['count(*)'])[0]}"
        )

    attempt("delete(ids=<all ids >= 2000, ~8000 ids>)", big_del)
    attempt("upsert partial row (only id+path) without partial_update", lambda: c.upsert("c", [{"id": 7, "path": "x"}]))
    close_db(c, db)


def s_consistency():
    hdr("7. consistency / flush")
    db = fresh_db("cons.db")
    c = MilvusClient(db)
    create(c, "k")
    r = rows(range(10))
    for lvl in ("Strong", "Bounded", "Eventually", "Session"):
        rid = {"Strong": 100, "Bounded": 200, "Eventually": 300, "Session": 400}[lvl]
        row = rows([rid], terms=[f"fresh{rid}"])[0]
        c.insert("k", [row])
        d = c.search("k", data=[row["vec"]], anns_field="vec", limit=1, consistency_level=lvl)
        b = bm25_search(c, "k", f"fresh{rid}", consistency_level=lvl)
        qq = c.query("k", filter=f"id == {rid}", output_fields=["id"], consistency_level=lvl)
        print(f"  {lvl:10s} immediately after insert: dense top1={d[0][0]['id'] if d[0] else None} bm25={b} query={qq}")
    c.insert("k", r)
    c.delete("k", ids=[0])
    print("  get id 0 right after delete:", c.get("k", ids=[0]))
    attempt("flush()", lambda: c.flush("k"))
    attempt("get_collection_stats", lambda: c.get_collection_stats("k"))
    close_db(c, db)
    # reopen persists?
    c = MilvusClient(db)
    attempt("same-process reopen: count", lambda: c.query("k", filter="", output_fields=["count(*)"]))
    close_db(c, db)


CHILD = textwrap.dedent("""
    import sys, time
    from pymilvus import MilvusClient
    c = MilvusClient(sys.argv[1])
    print("OPENED", flush=True)
    if len(sys.argv) > 2 and sys.argv[2] == "close":
        c.close(); print("CLOSED", flush=True)
    time.sleep(float(sys.argv[3]) if len(sys.argv) > 3 else 60)
""")


def _spawn(db, mode="hold", sleep=60):
    p = subprocess.Popen(
        [sys.executable, "-c", CHILD, db, mode, str(sleep)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    while True:  # skip warnings (e.g. pkg_resources UserWarning) until OPENED / EOF
        line = p.stdout.readline()
        if not line or "OPENED" in line:
            return p, line


def _kill_children(pids):
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _try_open_in_new_process(db):
    p = subprocess.run([sys.executable, "-c", CHILD, db, "hold", "0"], capture_output=True, text=True, timeout=60)
    out = (p.stdout + p.stderr).strip().splitlines()
    keep = [l for l in out if "OPENED" in l or "Exception" in l or "ERROR" in l or "failed" in l.lower()]
    return p.returncode, keep[-4:]


def s_twoproc():
    hdr("6. two processes on one .db")
    db = fresh_db("two.db")
    c = MilvusClient(db)
    create(c, "t", bm25=False)
    c.close()
    mine = [x for x in milvus_children() if x[1] == os.getpid()]
    print(
        "  after MilvusClient.close() (pymilvus",
        __import__("pymilvus").__version__,
        ") our milvus child is still running:",
        mine,
    )
    print("  lock file present:", os.path.exists(os.path.join(PROBE_DIR, ".two.db.lock")))
    rc, out = _try_open_in_new_process(db)
    print(f"  second process while we only close()d: rc={rc}")
    for l in out:
        print("    |", l)
    close_db(c, db)  # explicit release_server
    time.sleep(1)
    print("  after release_server(): our milvus children:", [x for x in milvus_children() if x[1] == os.getpid()])
    p, line = _spawn(db, "hold")
    print("  process A opened the db:", line.strip())
    time.sleep(1)
    lock = os.path.join(PROBE_DIR, ".two.db.lock")
    print("  lock file present while A holds it:", os.path.exists(lock))
    rc, out = _try_open_in_new_process(db)
    print(f"  process B while A holds it: rc={rc}")
    for l in out:
        print("    |", l)
    print("  lock file present after B's failed attempt:", os.path.exists(lock))
    pc, line = _spawn(db, "hold", 5)
    print(
        "  process C (3rd) while A still holds it:",
        line.strip() or "failed",
        "| servers on two.db now:",
        len([x for x in milvus_children() if "two.db" in x[2]]),
    )
    os.killpg(pc.pid, signal.SIGTERM)
    pc.wait()
    time.sleep(1)
    try:
        c2 = MilvusClient(db)
        print("  this process reopening while A holds it: OPENED (unexpected)")
        c2.close()
    except Exception as e:  # noqa: BLE001
        print(f"  this process reopening while A holds it: {type(e).__name__}: {e}")
    os.killpg(p.pid, signal.SIGTERM)
    p.wait()
    time.sleep(1)
    left = [x for x in milvus_children() if "two.db" in x[2]]
    print("  after SIGTERM of A's process group, leftover milvus for two.db:", left)
    _kill_children([x[0] for x in left])


def s_cleanup():
    hdr("8. process cleanup")
    db = fresh_db("clean.db")
    lock = os.path.join(PROBE_DIR, ".clean.db.lock")
    # (a) close() then keep process alive
    p, line = _spawn(db, "close", 30)
    line2 = p.stdout.readline()
    time.sleep(1)
    ch = [x for x in milvus_children() if x[1] == p.pid]
    print(
        f"  (a) parent pid {p.pid}: {line.strip()} {line2.strip()}; milvus children"
        f" still alive after client.close(): {ch}"
    )
    print("      lock file exists:", os.path.exists(lock))
    os.kill(p.pid, signal.SIGTERM)
    p.wait()
    time.sleep(1.5)
    print("  (a') after SIGTERM of parent: leftover", [x for x in milvus_children() if "clean.db" in x[2]])
    _kill_children([x[0] for x in milvus_children() if "clean.db" in x[2]])

    # (b) kill -9 of parent
    p, line = _spawn(db, "hold", 60)
    time.sleep(1)
    ch = [x for x in milvus_children() if x[1] == p.pid]
    print(f"  (b) parent {p.pid} {line.strip()}; child: {ch}")
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    for t in (0.5, 2, 5, 10):
        time.sleep(t if t == 0.5 else t - prev)  # noqa: F821
        prev = t  # noqa: F841
        left = [x for x in milvus_children() if "clean.db" in x[2]]
        print(f"      {t:>4}s after kill -9 of parent: leftover milvus {left}")
        if not left:
            break
    print("      lock file still exists:", os.path.exists(lock))
    # can a new process open it now?
    p3, line3 = _spawn(db, "hold", 1)
    print("      new process open after kill -9:", line3.strip() or p3.stdout.read()[-300:])
    p3.wait()
    time.sleep(1.5)
    left = [x for x in milvus_children() if "clean.db" in x[2]]
    _kill_children([x[0] for x in left])
    print("      cleanup killed:", left)

    # (c) kill -9 of parent while the server is wedged (filter_params hang, see section 4)
    hang = textwrap.dedent("""
        import sys, logging
        from pymilvus import MilvusClient, DataType
        logging.getLogger("pymilvus").setLevel(logging.CRITICAL)
        c = MilvusClient(sys.argv[1])
        if not c.has_collection("f"):
            s = c.create_schema(auto_id=False)
            s.add_field("id", DataType.INT64, is_primary=True)
            s.add_field("v", DataType.FLOAT_VECTOR, dim=2)
            ip = c.prepare_index_params()
            ip.add_index("v", index_type="FLAT", metric_type="L2")
            c.create_collection("f", schema=s, index_params=ip)
            c.insert("f", [{"id": 1, "v": [0.0, 1.0]}])
        print("OPENED", flush=True)
        c.query("f", filter="id in {ids}", filter_params={"ids": [1]})
    """)
    p = subprocess.Popen(
        [sys.executable, "-c", hang, db],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    while (ln := p.stdout.readline()) and "OPENED" not in ln:
        pass
    time.sleep(5)
    srv = [x for x in milvus_children() if x[1] == p.pid]
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    time.sleep(10)
    left = [x for x in milvus_children() if "clean.db" in x[2]]
    print(f"  (c) kill -9 of parent while its query hangs: server {srv}; 10 s later leftover: {left}")
    _kill_children([x[0] for x in left])
    if left:
        time.sleep(1)
        print("      after kill -9 of leftover pid(s):", [x for x in milvus_children() if "clean.db" in x[2]])


def rss_of_server(db):
    for pid, _, args in milvus_children():
        if db in args:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS"):
                        return line.split(":", 1)[1].strip()
    with open("/proc/self/status") as f:  # lite 3.x: server runs inside this process
        for line in f:
            if line.startswith("VmRSS"):
                return "in-process; whole python process VmRSS " + line.split(":", 1)[1].strip()
    return "?"


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def s_bench():
    hdr("9. rough speed (2-core box)")
    db = fresh_db("bench.db")
    c = MilvusClient(db)
    create(c, "b")
    N, B = 20000, 1000
    vocab = [f"w{i}" for i in range(5000)] + ["python", "中文", "分词", "c++", "3.12"]
    rng = np.random.default_rng(1)
    t0 = time.time()
    per = []
    for i in range(0, N, B):
        ids = range(i, i + B)
        terms = [" ".join(rng.choice(vocab, 60)) for _ in ids]
        paths = [f"{'docs' if j % 4 == 0 else 'src'}/d{j % 50}/f{j}.md" for j in ids]
        rr = rows(ids, terms=terms, paths=paths)
        t = time.time()
        c.insert("b", rr)
        per.append(time.time() - t)
    total = time.time() - t0
    print(
        f"  insert {N} rows (384-d + 60-term text) in batches of {B}: total {total:.1f}s"
        f" (insert calls only {sum(per):.1f}s, p50 batch {statistics.median(per) * 1000:.0f} ms)"
    )
    print("  milvus server RSS after insert:", rss_of_server(db))
    t = time.time()
    c.flush("b")
    print(f"  flush: {time.time() - t:.2f}s")
    qs = unit(100, 384).tolist()

    def timeit(label, fn):
        fn(0)  # warm-up
        ts = []
        for i in range(100):
            t = time.perf_counter()
            fn(i)
            ts.append((time.perf_counter() - t) * 1000)
        print(f"  {label:45s} p50 {pct(ts, 50):7.1f} ms  p90 {pct(ts, 90):7.1f} ms  max {max(ts):7.1f} ms")

    timeit("dense search k=10", lambda i: c.search("b", data=[qs[i]], anns_field="vec", limit=10))
    timeit(
        "dense search k=10 + output_fields path",
        lambda i: c.search("b", data=[qs[i]], anns_field="vec", limit=10, output_fields=["path", "mtime"]),
    )
    qterms = [" ".join(rng.choice(vocab, 3)) for _ in range(100)]
    print("  sanity: hits for BM25 query 0:", len(c.search("b", data=[qterms[0]], anns_field="sparse", limit=10)[0]))
    timeit("BM25 search k=10 (3-term query)", lambda i: c.search("b", data=[qterms[i]], anns_field="sparse", limit=10))
    timeit(
        "hybrid dense+BM25 RRF(60) k=10 (sub-limit 50)",
        lambda i: c.hybrid_search(
            "b",
            [
                AnnSearchRequest(data=[qs[i]], anns_field="vec", param={"metric_type": "COSINE"}, limit=50),
                AnnSearchRequest(data=[qterms[i]], anns_field="sparse", param={"metric_type": "BM25"}, limit=50),
            ],
            ranker=RRFRanker(60),
            limit=10,
        ),
    )
    timeit(
        'dense k=10 filter path like "docs/%" (25%)',
        lambda i: c.search("b", data=[qs[i]], anns_field="vec", limit=10, filter='path like "docs/%"'),
    )
    timeit(
        "dense k=10 filter 'docs/d8/%' and mtime>.. (0.75%)",
        lambda i: c.search(
            "b", data=[qs[i]], anns_field="vec", limit=10, filter='path like "docs/d8/%" and mtime > 1700005000.0'
        ),
    )
    print(
        "  rows matching that filter:",
        c.query("b", filter='path like "docs/d8/%" and mtime > 1700005000.0', output_fields=["count(*)"])[0],
    )
    timeit(
        "query by path == (scalar lookup)",
        lambda i: c.query("b", filter=f'path == "src/d1/f{i * 4 + 1}.md"', output_fields=["id"]),
    )
    t = time.time()
    n = len(c.delete("b", filter='path like "docs/d8/%"'))
    print(f"  delete(filter path like 'docs/d8/%'): {n} rows in {(time.time() - t) * 1000:.0f} ms")
    print("  milvus server RSS:", rss_of_server(db))
    close_db(c, db)
    time.sleep(1)
    t = time.time()
    c = MilvusClient(db)
    c.load_collection("b")  # needed on lite 3.x (state 'released' after reopen)
    t1 = time.time()
    r = c.search("b", data=[qs[0]], anns_field="vec", limit=10)
    t2 = time.time()
    print(
        f"  reopen: MilvusClient() {t1 - t:.2f}s, first search {t2 - t1:.2f}s"
        f" ({len(r[0])} hits), count={c.query('b', filter='', output_fields=['count(*)'])[0]}"
    )
    close_db(c, db)
    du = subprocess.run(["du", "-sh", db], capture_output=True, text=True).stdout.strip()
    print("  on-disk size:", du)
    print(
        "  contents:", subprocess.run(["bash", "-c", f"ls -la {db} | head -20"], capture_output=True, text=True).stdout
    )


SECTIONS = {
    "versions": s_versions,
    "schema": s_schema,
    "bm25": s_bm25,
    "hybrid": s_hybrid,
    "filters": s_filters,
    "literals": s_literals,
    "crud": s_crud,
    "consistency": s_consistency,
    "twoproc": s_twoproc,
    "cleanup": s_cleanup,
    "bench": s_bench,
}

if __name__ == "__main__":
    todo = sys.argv[1:] or list(SECTIONS)
    for s in todo:
        try:
            SECTIONS[s]()
        except Exception:  # noqa: BLE001
            print(f"SECTION {s} CRASHED:")
            traceback.print_exc()
    print("\nmilvus processes at end:", milvus_children())
