#!/usr/bin/env python3
"""Search quality and latency on the CISI test collection, side by side:
the collection spread over N local nodes (`ryx-cluster start --docs`), each
of its queries asked of one node (`GET /v1/search`), against one index
over all the documents in one process (`ryx-node exec search`).

  scripts/search-cisi.py [--nodes 5] [--k 100] [--ir ../shared/data/ir/cisi]
                         [--bench ../shared/bench/ir] [--chunk-size 64KiB]

Prints nDCG@10 and MAP@100 of both runs (the collection's `eval.py`), how
many queries rank identically, the latency of the cluster's answers, and
its throughput (every query asked by C concurrent clients spread over the
nodes, for each C of --concurrency) beside one tantivy index in one
process (tantivy's Python binding, when installed).
Documents are `{"id": n, "text": title + " " + abstract}`, queries their
text + title with punctuation removed, as the collection's tantivy
reference does. Stops the cluster it started."""
import argparse, concurrent.futures, json, os, re, statistics, subprocess, sys, tempfile, time, urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=5)
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--ir", default=os.path.join(ROOT, "..", "shared", "data", "ir", "cisi"))
    ap.add_argument("--bench", default=os.path.join(ROOT, "..", "shared", "bench", "ir"))
    ap.add_argument("--chunk-size", default="64KiB")
    ap.add_argument("--bin", default=os.path.join(ROOT, "target", "release"))
    ap.add_argument("--concurrency", default="1,4,16", help="clients at once for the throughput runs")
    ap.add_argument("--distinct-words", action="store_true",
                    help="each distinct query word once, as tantivy's query parser does")
    a = ap.parse_args()
    sys.path.insert(0, a.bench)
    from eval import parse  # the collection's own parser

    work = tempfile.mkdtemp(prefix="ryx-cisi-")
    corpus = os.path.join(work, "cisi.jsonl")
    docs = parse(os.path.join(a.ir, "CISI.ALL"))
    with open(corpus, "w") as f:
        for n, d in sorted(docs.items()):
            f.write(json.dumps({"id": n, "text": d.get("T", "") + " " + d.get("W", "")}) + "\n")
    queries = []
    for n, q in sorted(parse(os.path.join(a.ir, "CISI.QRY")).items()):
        queries.append((n, " ".join(re.sub(r"[^A-Za-z0-9 ]", " ", q.get("W", "") + " " + q.get("T", "")).split())))

    cluster = [os.path.join(a.bin, "ryx-cluster"), "--dir", os.path.join(work, "run")]
    subprocess.run(cluster + ["start", "--nodes", str(a.nodes), "--docs", corpus, "--", "--chunk-size", a.chunk_size],
                   check=True, stdout=subprocess.DEVNULL)
    try:
        state = json.load(open(os.path.join(work, "run", "cluster.json")))
        ports = [n["http_port"] for n in state["nodes"]]

        def search(port, q):
            url = f"http://127.0.0.1:{port}/v1/search?dataset=docs&k={a.k}&q=" + urllib.parse.quote(q)
            if a.distinct_words:
                url += "&distinct_words=true"
            t = time.monotonic()
            with urllib.request.urlopen(url, timeout=120) as r:
                body = json.load(r)
            return body, time.monotonic() - t

        deadline = time.monotonic() + 60
        while True:
            try:
                if search(ports[0], "information")[0]["dataset"]["nodes"] == a.nodes:
                    break
            except Exception:
                pass
            if time.monotonic() > deadline:
                sys.exit("not every node's part of the corpus is announced")
            time.sleep(0.5)

        dist, ref, lat, ref_lat, same = [], [], [], [], 0
        for i, (n, q) in enumerate(queries):
            body, dt = search(ports[i % len(ports)], q)
            lat.append(dt)
            got = [int(h["id"]) for h in body["hits"]]
            t = time.monotonic()
            out = subprocess.run([os.path.join(a.bin, "ryx-node"), "exec", "search", "--json", "--input", corpus,
                                  "--param", f"q={q}", "--param", f"k={a.k}",
                                  "--param", f"distinct_words={'true' if a.distinct_words else 'false'}"],
                                 check=True, capture_output=True)
            ref_lat.append(time.monotonic() - t)
            want_body = json.loads(out.stdout)
            want = [int(h["id"]) for h in want_body["hits"]]
            same += got == want and body["hits"] == want_body["hits"]
            dist.append({"query": n, "docs": got})
            ref.append({"query": n, "docs": want})
        for name, run in (("cluster", dist), ("one index", ref)):
            path = os.path.join(work, f"{name.replace(' ', '-')}.jsonl")
            with open(path, "w") as f:
                f.writelines(json.dumps(r) + "\n" for r in run)
            score = subprocess.run([sys.executable, os.path.join(a.bench, "eval.py"), path, a.ir],
                                   check=True, capture_output=True, text=True).stdout.strip()
            print(f"{name:>9}: {score}")
        # The collection's own reference (tantivy's Python binding), when
        # it is installed: how many queries get the same top 10.
        try:
            import tantivy  # noqa: F401
            path = os.path.join(work, "tantivy-py.jsonl")
            subprocess.run([sys.executable, os.path.join(a.bench, "tantivy_reference.py"), path, a.ir], check=True,
                           capture_output=True)
            py = {json.loads(l)["query"]: json.loads(l)["docs"] for l in open(path)}
            score = subprocess.run([sys.executable, os.path.join(a.bench, "eval.py"), path, a.ir],
                                   check=True, capture_output=True, text=True).stdout.strip()
            print(f"tantivy-py: {score}")
            top10 = sum(1 for r in dist if py.get(r["query"], [])[:10] == r["docs"][:10])
            print(f"same top 10 as tantivy's Python binding: {top10} of {len(dist)} queries")
        except ImportError:
            print("(tantivy's Python binding is not installed: pip install tantivy to compare with it)")
        # Throughput: every query once, C clients at once, over all nodes.
        for c in [int(x) for x in a.concurrency.split(",") if x]:
            t = time.monotonic()
            with concurrent.futures.ThreadPoolExecutor(c) as pool:
                list(pool.map(lambda iq: search(ports[iq[0] % len(ports)], iq[1][1]), enumerate(queries)))
            dt = time.monotonic() - t
            print(f"throughput, {c:>2} clients: {len(queries) / dt:.1f} queries/s ({len(queries)} in {dt:.2f} s)")
        try:
            import tantivy
            schema = tantivy.SchemaBuilder().add_text_field("text", stored=False, tokenizer_name="en_stem") \
                .add_integer_field("id", stored=True).build()
            index = tantivy.Index(schema)
            w = index.writer()
            for n, d in sorted(docs.items()):
                w.add_document(tantivy.Document(id=int(n), text=d.get("T", "") + " " + d.get("W", "")))
            w.commit()
            index.reload()
            searcher = index.searcher()
            t = time.monotonic()
            for _, q in queries:
                searcher.search(index.parse_query(q, ["text"]), a.k)
            dt = time.monotonic() - t
            print(f"throughput, one tantivy index in one process (Python binding, one thread): "
                  f"{len(queries) / dt:.1f} queries/s")
        except ImportError:
            pass
        lat.sort()
        print(f"identical rankings and scores (top {a.k}): {same} of {len(queries)} queries")
        print(f"cluster of {a.nodes} nodes, {len(docs)} documents: latency median {statistics.median(lat) * 1000:.0f} ms, "
              f"p90 {lat[int(0.9 * (len(lat) - 1))] * 1000:.0f} ms, max {lat[-1] * 1000:.0f} ms; "
              f"one-index exec (process start, index build and query) median {statistics.median(ref_lat) * 1000:.0f} ms")
    finally:
        subprocess.run(cluster + ["stop"], stdout=subprocess.DEVNULL)


if __name__ == "__main__":
    main()
