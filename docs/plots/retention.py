"""Draws the retention scenario of `reader-sync bench` (docs/PERFORMANCE.md, "Bounded growth").

    python3 -m venv /tmp/plot-env && /tmp/plot-env/bin/pip install matplotlib
    .build/release/reader-sync bench --scenario retention --json > retention.json
    /tmp/plot-env/bin/python docs/plots/retention.py retention.json docs/retention-180-days.png

Reads the bench's JSON report (`series.retention`: one row per simulated day) and writes a PNG
with two panels sharing the day axis: what the database holds, and what pulls and compaction cost.
"""

import json
import sys

import matplotlib

matplotlib.use("Agg")  # no display needed
import matplotlib.pyplot as plt  # noqa: E402


def main(source: str, target: str) -> None:
    with open(source, encoding="utf-8") as f:
        report = json.load(f)
    rows = report["series"]["retention"]
    days = [row["day"] for row in rows]

    figure, (size, cost) = plt.subplots(2, 1, figsize=(9, 7.5), sharex=True)
    figure.suptitle("ReaderSync, 180 simulated days: 1,000 articles a day, 2,000 readers,\n"
                    "90-day retention, compaction every night (SQLite)", fontsize=11)

    size.plot(days, [row["databaseBytes"] / 1e6 for row in rows], label="database file (MB)", color="tab:blue")
    size.plot(days, [(row["databaseBytes"] - row["freeBytes"]) / 1e6 for row in rows],
              label="in use (MB, file minus free pages)", color="tab:blue", linestyle="--")
    size.set_ylabel("MB")
    size.grid(alpha=0.3)
    articles = size.twinx()
    articles.plot(days, [row["liveArticles"] for row in rows], label="live articles", color="tab:green")
    articles.plot(days, [row["states"] for row in rows], label="user states", color="tab:orange")
    articles.set_ylabel("rows")
    lines = size.get_legend_handles_labels()
    more = articles.get_legend_handles_labels()
    size.legend(lines[0] + more[0], lines[1] + more[1], loc="upper left", fontsize=8)

    cost.plot(days, [row["dailyPullMilliseconds"] for row in rows], label="daily device: the day's pull (ms)")
    cost.plot(days, [row["firstSyncMilliseconds"] for row in rows], label="new device: first sync, 500-article window (ms)")
    cost.plot(days, [row["compactionMilliseconds"] for row in rows], label="nightly compaction (ms)")
    cost.set_xlabel("simulated day")
    cost.set_ylabel("milliseconds")
    cost.grid(alpha=0.3)
    cost.legend(loc="upper left", fontsize=8)

    figure.tight_layout()
    figure.savefig(target, dpi=110)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: retention.py BENCH_JSON OUTPUT_PNG")
    main(sys.argv[1], sys.argv[2])
