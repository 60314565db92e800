"""Provider-layer overhead (figures, not tests).

Against the same local fake server (tests/providers/servers.py, real HTTP on 127.0.0.1), in the
same run, calls alternate between the provider (SDK + retry skeleton + cleanup + usage) and a
raw ``httpx`` request with the same JSON body that only decodes the answer:

1. Per-call time, non-streamed, for OpenAI chat (message), Anthropic (prefill) and Ollama
   (raw prefill): median and p90 over N calls, and the ratio/difference of the medians.
2. Streaming: time from the server writing the first content piece to it reaching the
   provider's ``on_delta`` callback, against a raw streaming httpx reader seeing it (median),
   plus time-to-first-token from the start of the call.

Usage: .venv/bin/python bench/provider_overhead.py [--calls N] [--prefix-kb K] [--json]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from spellide.spell.api import ModelRequest, get_model, system_prompt  # noqa: E402
from tests.providers.servers import ModelServer, Reply  # noqa: E402

KEY_ENV = "SPELLIDE_BENCH_FAKE_KEY"
ANSWER = "(def xs (range 10)) (think \"sum them\") (reduce + xs)"


def make_prefix(kb: int) -> str:
    body = []
    i = 0
    while sum(len(b) for b in body) < kb * 1024:
        body.append(f'(def v{i} {{:name "item {i}" :score {i * 7 % 13}}}) (quote (!extend)) ')
        i += 1
    return '(quine completion (eval (do (quine prompt "Benchmark") ' + "".join(body)


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def measure(n: int, a: Callable[[], Any], b: Callable[[], Any]) -> tuple[list[float], list[float]]:
    for _ in range(10):  # warm up connections, imports, caches
        a()
        b()
    ta: list[float] = []
    tb: list[float] = []
    for _ in range(n):
        t0 = time.perf_counter()
        a()
        t1 = time.perf_counter()
        b()
        t2 = time.perf_counter()
        ta.append(t1 - t0)
        tb.append(t2 - t1)
    return ta, tb


def _serve(port_q: Any, stop: Any) -> None:
    """The fake server in its own process, so its threads do not compete with the measured
    client for the GIL (time.perf_counter is CLOCK_MONOTONIC, comparable across processes)."""
    # Streams pause 20 ms after the first content piece, so "first piece reached the callback"
    # is measured while the server is idle.
    srv = ModelServer(default=Reply(text=ANSWER, chunk=16, first_piece_delay=0.02)).start()
    port_q.put(srv.port)
    stop.wait()
    srv.stop()


class RemoteServer:
    def __init__(self) -> None:
        ctx = mp.get_context("spawn")
        self.q = ctx.Queue()
        self.stop = ctx.Event()
        self.proc = ctx.Process(target=_serve, args=(self.q, self.stop), daemon=True)

    def __enter__(self) -> "RemoteServer":
        self.proc.start()
        self.port = self.q.get(timeout=30)
        self.url = f"http://127.0.0.1:{self.port}"
        self.openai_url = f"{self.url}/v1"
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        self.proc.join(timeout=5)

    def first_piece_sent(self, client: httpx.Client) -> float:
        return client.get(f"{self.url}/_stats").json()["first_piece_sent"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=300)
    ap.add_argument("--prefix-kb", type=int, default=8)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    os.environ[KEY_ENV] = "sk-bench-not-a-real-key"
    prefix = make_prefix(args.prefix_kb)
    results: dict[str, Any] = {"calls": args.calls, "prefix_chars": len(prefix)}

    with RemoteServer() as srv:
        raw = httpx.Client(timeout=30)
        stats = httpx.Client(timeout=30)
        headers = {"authorization": f"Bearer {os.environ[KEY_ENV]}", "content-type": "application/json"}

        # --- 1. per-call overhead, non-streamed ------------------------------------------
        cases = []
        m_oa = get_model("openai:fake-model@message", profiles={}, base_url=srv.openai_url,
                         api_key_env=KEY_ENV, max_tokens=1024)
        oa_body = {"model": "fake-model", "max_tokens": 1024, "messages": [
            {"role": "system", "content": system_prompt("message")}, {"role": "user", "content": prefix}]}
        cases.append(("openai chat (message)", m_oa,
                      lambda: raw.post(f"{srv.openai_url}/chat/completions", json=oa_body,
                                       headers=headers).json()["choices"][0]["message"]["content"]))
        m_an = get_model("anthropic:fake-model@prefill", profiles={}, base_url=srv.url,
                         api_key_env=KEY_ENV, max_tokens=1024)
        an_body = {"model": "fake-model", "max_tokens": 1024, "system": system_prompt("prefill"),
                   "messages": [{"role": "user", "content": "Continue this Spell program."},
                                {"role": "assistant", "content": prefix.rstrip()}]}
        cases.append(("anthropic (prefill)", m_an,
                      lambda: raw.post(f"{srv.url}/v1/messages", json=an_body,
                                       headers=dict(headers, **{"anthropic-version": "2023-06-01"})
                                       ).json()["content"][0]["text"]))
        m_ol = get_model("ollama:fake-model@prefill", profiles={}, base_url=srv.url, max_tokens=1024)
        ol_body = {"model": "fake-model", "prompt": prefix, "raw": True, "stream": False,
                   "options": {"num_predict": 1024}}
        cases.append(("ollama generate (raw prefill)", m_ol,
                      lambda: raw.post(f"{srv.url}/api/generate", json=ol_body).json()["response"]))

        rows = []
        for label, model, raw_call in cases:
            req = ModelRequest(prefix)
            tp, tr = measure(args.calls, lambda: model.complete(req), raw_call)
            mp, mr = statistics.median(tp), statistics.median(tr)
            rows.append({"case": label, "provider_ms": mp * 1e3, "raw_ms": mr * 1e3,
                         "provider_p90_ms": pct(tp, 0.9) * 1e3, "raw_p90_ms": pct(tr, 0.9) * 1e3,
                         "ratio": mp / mr, "overhead_ms": (mp - mr) * 1e3})
        results["per_call"] = rows

        # --- 2. streaming: server's first piece -> callback ----------------------------------
        stream_rows = []
        n = max(20, args.calls // 3)

        def provider_stream(model: Any) -> tuple[float, float]:
            got: list[float] = []
            t0 = time.perf_counter()
            model.complete(ModelRequest(prefix, on_delta=lambda s: got.append(time.perf_counter())))
            return got[0] - srv.first_piece_sent(stats), got[0] - t0

        def raw_openai_stream() -> tuple[float, float]:
            body = dict(oa_body, stream=True, stream_options={"include_usage": True})
            t0 = time.perf_counter()
            first = None
            with raw.stream("POST", f"{srv.openai_url}/chat/completions", json=body, headers=headers) as r:
                for line in r.iter_lines():
                    if line.startswith("data: {") and first is None:
                        d = json.loads(line[6:])
                        if d["choices"] and d["choices"][0]["delta"].get("content"):
                            first = time.perf_counter()
            assert first is not None
            return first - srv.first_piece_sent(stats), first - t0

        def raw_anthropic_stream() -> tuple[float, float]:
            body = dict(an_body, stream=True)
            t0 = time.perf_counter()
            first = None
            with raw.stream("POST", f"{srv.url}/v1/messages", json=body,
                            headers=dict(headers, **{"anthropic-version": "2023-06-01"})) as r:
                for line in r.iter_lines():
                    if first is None and line.startswith("data: ") and '"text_delta"' in line:
                        json.loads(line[6:])
                        first = time.perf_counter()
            assert first is not None
            return first - srv.first_piece_sent(stats), first - t0

        def raw_ollama_stream() -> tuple[float, float]:
            body = dict(ol_body, stream=True)
            t0 = time.perf_counter()
            first = None
            with raw.stream("POST", f"{srv.url}/api/generate", json=body) as r:
                for line in r.iter_lines():
                    if first is None and line:
                        if json.loads(line).get("response"):
                            first = time.perf_counter()
            assert first is not None
            return first - srv.first_piece_sent(stats), first - t0

        for label, model, raw_fn in [("openai chat (message)", m_oa, raw_openai_stream),
                                     ("anthropic (prefill)", m_an, raw_anthropic_stream),
                                     ("ollama generate (raw prefill)", m_ol, raw_ollama_stream)]:
            for _ in range(5):
                provider_stream(model)
                raw_fn()
            lp, tp_, lr, tr_ = [], [], [], []
            for _ in range(n):
                a, b = provider_stream(model)
                lp.append(a)
                tp_.append(b)
                a, b = raw_fn()
                lr.append(a)
                tr_.append(b)
            stream_rows.append({"case": label, "calls": n,
                                "server_to_callback_ms": statistics.median(lp) * 1e3,
                                "server_to_raw_reader_ms": statistics.median(lr) * 1e3,
                                "ttft_provider_ms": statistics.median(tp_) * 1e3,
                                "ttft_raw_ms": statistics.median(tr_) * 1e3})
        results["streaming"] = stream_rows
        raw.close()

    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"provider overhead: {args.calls} calls per case, prefix {len(prefix)} chars, "
          f"local fake server, median (p90)")
    print(f"{'case':32} {'provider ms':>16} {'raw httpx ms':>16} {'ratio':>7} {'overhead ms':>12}")
    for r in results["per_call"]:
        print(f"{r['case']:32} {r['provider_ms']:7.2f} ({r['provider_p90_ms']:6.2f}) "
              f"{r['raw_ms']:7.2f} ({r['raw_p90_ms']:6.2f}) {r['ratio']:7.2f} {r['overhead_ms']:12.2f}")
    print()
    print("streaming: server writes first content piece -> callback sees it (median); "
          "time to first token from call start")
    print(f"{'case':32} {'->on_delta ms':>14} {'->raw ms':>9} {'TTFT prov ms':>13} {'TTFT raw ms':>12}")
    for r in results["streaming"]:
        print(f"{r['case']:32} {r['server_to_callback_ms']:14.3f} {r['server_to_raw_reader_ms']:9.3f} "
              f"{r['ttft_provider_ms']:13.2f} {r['ttft_raw_ms']:12.2f}")


if __name__ == "__main__":
    main()
