"""examples/ablation_report.py: the ablation's table and figure from the committed sweep results."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SWEEP = ROOT / "examples" / "runs" / "ablation-sinusoid"


def report_module():
    spec = importlib.util.spec_from_file_location("ablation_report", ROOT / "examples" / "ablation_report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_table_is_the_sweep_s_summary_and_the_docs_table(tmp_path, capsys):
    report = report_module()
    results = json.loads((SWEEP / "results.json").read_text())
    report.main([str(SWEEP), "--png", str(tmp_path / "ablation.png")])
    printed = capsys.readouterr().out
    row = next(c for c in results["configs"] if c["config"] == {"learner.message_size": 8, "graph.sharing": "layer"})
    cell = f"{row['eval_mean'][-1]:.4f} ± {row['eval_std'][-1]:.4f} (3)"
    assert f"| 8 | {cell} |" in printed
    table_rows = [line for line in printed.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert len(table_rows) == 3 and all(line.count("(3)") == 3 for line in table_rows)  # 3 sizes x 3 sharings x 3 seeds
    docs = (ROOT / "docs" / "reproduction.md").read_text()
    for line in table_rows:  # the docs' table is the printed one, without the seed counts
        assert line.replace(" (3)", "").replace("0.0131 ± 0.0016", "**0.0131 ± 0.0016**") in docs
    assert (tmp_path / "ablation.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
