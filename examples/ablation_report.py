"""The Appendix B ablation's table and figure from its sweep (docs/reproduction.md): message size x
sharing configuration, mean ± std across seeds of the final step-5 eval, and the meta-loss curves.

    python examples/ablation_report.py examples/runs/ablation-sinusoid --png docs/ablation_sinusoid.png

Reads the sweep folder's ``results.json`` (``graphflow sweep`` writes it; a rerun of the sweep on
a finished folder writes it again) and prints the table as Markdown.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

MESSAGE, SHARING = "learner.message_size", "graph.sharing"
SHARING_NAMES = {"layer": "per layer", "kind": "per kind", "kind+norm": "per kind, shared normalization"}


def configs_by_cell(results: dict) -> dict:
    """(message size, sharing) -> the config's summary row of the sweep's results."""
    return {(c["config"][MESSAGE], c["config"][SHARING]): c for c in results["configs"] if c.get("eval_mean")}


def table(results: dict) -> str:
    """Markdown: one row per message size, one column per sharing configuration, the final
    eval after the last inner step (mean ± std across seeds), and the row's mean."""
    cells = configs_by_cell(results)
    sizes = sorted({m for m, _ in cells})
    sharings = [s for s in SHARING_NAMES if any(k[1] == s for k in cells)]
    steps = next(iter(cells.values()))["eval_steps"][-1]
    lines = [f"| message size | {' | '.join(SHARING_NAMES[s] for s in sharings)} |",
             "| --- |" + " --- |" * len(sharings)]
    for m in sizes:
        row = []
        for s in sharings:
            c = cells.get((m, s))
            if c is None:
                row.append("-")
                continue
            mean, std = c["eval_mean"][-1], c["eval_std"][-1]
            row.append(f"{mean:.4f} ± {std:.4f} ({c['n']})" if std is not None else f"{mean:.4f} ({c['n']})")
        lines.append(f"| {m} | {' | '.join(row)} |")
    return f"step-{steps} eval loss, mean ± std across seeds (seeds):\n\n" + "\n".join(lines)


def _smooth(values: list[float], width: int) -> list[float]:
    """Centred running mean over ``width`` points (fewer at the ends)."""
    half = width // 2
    return [sum(values[max(0, i - half):i + half + 1]) / len(values[max(0, i - half):i + half + 1])
            for i in range(len(values))]


def plot(results: dict, path: Path, smooth: int = 7) -> None:
    """Top: the final eval after each inner step per configuration; bottom: the meta-loss
    curves, one panel per message size, one line per sharing configuration (mean across seeds,
    a running mean over ``smooth`` of the sweep's curve points)."""
    import matplotlib
    from matplotlib.figure import Figure

    cells = configs_by_cell(results)
    sizes = sorted({m for m, _ in cells})
    colors = dict(zip(SHARING_NAMES, matplotlib.colormaps["tab10"].colors))
    fig = Figure(figsize=(4.2 * len(sizes), 7.4))
    axes = fig.subplots(2, len(sizes), sharey="row", squeeze=False)
    for col, m in enumerate(sizes):
        top, bottom = axes[0][col], axes[1][col]
        for s, name in SHARING_NAMES.items():
            c = cells.get((m, s))
            if c is None:
                continue
            std = [0.0 if v is None else v for v in c["eval_std"]]
            top.errorbar(c["eval_steps"], c["eval_mean"], yerr=std, marker="o", capsize=3, color=colors[s],
                         label=f"{name} ({c['n']} seeds)")
            if c.get("meta_loss_steps"):
                bottom.plot(c["meta_loss_steps"], _smooth(c["meta_loss_mean"], smooth), color=colors[s], label=name)
        top.set_title(f"message size {m}")
        top.set_xlabel("inner step")
        top.set_yscale("log")
        bottom.set_xlabel("meta-step")
        bottom.set_yscale("log")
        top.legend(fontsize=7)
    axes[0][0].set_ylabel("final eval loss (mean ± std across seeds)")
    axes[1][0].set_ylabel(f"meta-loss (mean across seeds, running mean of {smooth})")
    fig.suptitle(f"sweep {results['sweep']}: message size x sharing, "
                 f"{max(c['n'] for c in cells.values())} seeds each")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep", type=Path, help="the sweep folder (holding results.json)")
    parser.add_argument("--png", type=Path, help="write the figure here")
    args = parser.parse_args(argv)
    results = json.loads((args.sweep / "results.json").read_text())
    print(table(results))
    if args.png:
        plot(results, args.png)
        print(f"wrote {args.png}")


if __name__ == "__main__":
    main()
