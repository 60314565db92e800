"""Team-review pages and run transfer on a 10,000-step run (figures, not a test).

Builds two recorded runs of N continued steps in a fresh SQLite file database (the second
differs from the first from step N/2 on), then measures, in process with Django's test client:

* render time and HTML bytes of the Charts view of one run, the Compare page of the two (it
  opens on the first divergent step) and Compare at a late step; the run page (opening on the
  last step) is the baseline measured in the same run, and each figure is also given as a
  ratio to it;
* export of one run as a bundle (time, compressed and uncompressed size, against the run's
  stored text) and its import into the same database (time; the copy gets a new id).

Targets: compare and charts under 1 s with bounded HTML.

Usage: .venv/bin/python bench/review_scale.py [--steps 10000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.browser.server import USERNAME, AppServer  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=10_000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="spellide-review-"))
    server = AppServer(tmp / "app")
    server.setup()
    os.environ.update(server.env)
    import django
    django.setup()
    from django.contrib.auth import get_user_model
    from django.test import Client

    from spellide.spell import api
    from spellide.web.bundles import export_bundle, import_bundle
    from spellide.web.models import ProgramVersion, clear_text_cache
    from tests.web.pagedata import make_run

    user = get_user_model().objects.get(username=USERNAME)
    n = args.steps
    t = time.perf_counter()
    db = tmp / "app" / "app.sqlite3"
    empty = db.stat().st_size
    a = make_run(user, n, title="a", bulk=True)
    run_bytes = db.stat().st_size - empty
    b = make_run(user, n, title="b", bulk=True, payload="")
    # b's completions differ from the middle on: a different constant in each later step
    from spellide.web.models import Step
    Step.objects.filter(run=b, step_id__gte=n // 2).update(completion="(def changed 1) (quote (!extend))")
    print(f"{n}-step runs built in {time.perf_counter() - t:.1f} s")

    c = Client(HTTP_HOST="127.0.0.1")
    c.force_login(user)
    urls = {"run page (baseline)": f"/runs/{a.public_id}/",
            "charts": f"/runs/{a.public_id}/charts/",
            "compare (first divergence)": f"/runs/{a.public_id}/compare/{b.public_id}/",
            f"compare at step {n - 10}": f"/runs/{a.public_id}/compare/{b.public_id}/?step={n - 10}"}
    rows = {}
    for name, url in urls.items():
        times, size = [], 0
        for i in range(args.repeats):
            if i == 0:
                clear_text_cache()
            t = time.perf_counter()
            r = c.get(url)
            times.append((time.perf_counter() - t) * 1000)
            assert r.status_code == 200, (url, r.status_code)
            size = len(r.content)
        rows[name] = (times[0], statistics.median(times), size)
    base = rows["run page (baseline)"][1]
    print("  page                              cold ms  median ms   vs run page   HTML bytes")
    for name, (cold, med, size) in rows.items():
        print(f"    {name:<30} {cold:>8.0f} {med:>10.0f} {med / base:>12.2f}x {size:>12,}")

    stored = sum(len(x) for x in ProgramVersion.objects.filter(run=a).values_list("tail", flat=True))
    ex, raw_sizes, gz_sizes, im = [], [], [], []
    for _ in range(args.repeats):
        t = time.perf_counter()
        data = export_bundle(a, user)
        gz = api.dump_bundle(data)
        ex.append(time.perf_counter() - t)
        raw_sizes.append(len(api.dump_bundle(data, compress=False)))
        gz_sizes.append(len(gz))
        t = time.perf_counter()
        import_bundle(api.load_bundle_bytes(gz), user)
        im.append(time.perf_counter() - t)
    print(f"  bundle: export {statistics.median(ex):.2f} s, import {statistics.median(im):.2f} s (medians of {args.repeats})")
    raw, gzb = statistics.median(raw_sizes), statistics.median(gz_sizes)
    print(f"          {raw / 1e6:.2f} MB JSON, {gzb / 1e6:.2f} MB gzip; the run takes {run_bytes / 1e6:.2f} MB of the "
          f"database ({stored / 1e6:.2f} MB of it program text): bundle / stored {gzb / run_bytes:.2f}x gzip, "
          f"{raw / run_bytes:.2f}x JSON")


if __name__ == "__main__":
    main()
