"""Draw bench/peer.py's capacity curve: JSON values on stdin → a PNG (run in .venv/bench, which has matplotlib).

    python -m bench.peer --json | ...   or, as bench/peer.py does:   .venv/bench/bin/python -m bench.curve OUT.png
"""

from __future__ import annotations

import json
import sys

import matplotlib

matplotlib.use("Agg")  # no screen: render to a file
import matplotlib.pyplot as plt

COLOURS = {"ours": "#1f77b4", "langgraph-api": "#d62728"}


def main() -> int:
    values = json.load(sys.stdin)
    sizes = values["curve_sizes"]
    figure, (ratio, cpu) = plt.subplots(1, 2, figsize=(10, 4), dpi=100)
    for label, rows in values["curve"].items():
        ratio.plot(sizes, [r["ratio_p99"] for r in rows], "o-", color=COLOURS.get(label), label=label)
        cpu.plot(sizes, [r["cpu_ms_per_turn"] for r in rows], "o-", color=COLOURS.get(label), label=label)
    ratio.axhline(1.2, color="grey", linestyle="--", linewidth=1, label="1.2× ideal")
    ratio.set(title="p99 stream time ÷ ideal", xlabel="streams at once", ylabel="× ideal")
    cpu.set(title="server CPU per streamed turn", xlabel="streams at once", ylabel="ms", ylim=(0, None))
    for axes in (ratio, cpu):
        axes.set_xscale("log", base=2)
        axes.set_xticks(sizes, [str(n) for n in sizes])
        axes.grid(alpha=0.3)
        axes.legend()
    figure.suptitle(f"The same graph, ours and LangGraph's Agent Server ({values['ideal_ms']:.0f} ms ideal stream)")
    figure.tight_layout()
    figure.savefig(sys.argv[1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
