"""Build the run report from the run's files alone.

    python -m jobs.report RUN_DIR        # e.g. runs/local

Reads RUN_DIR/summary.json and the stage folders RUN_DIR/iter_<k>/<stage>/ and writes RUN_DIR/report.md
(plots in RUN_DIR/report_files/) and RUN_DIR/report.html (one self-contained file, plots embedded):
held-out proof rate per iteration (LLM-only and LLM+EBM, with and without the probe tactics), gate
decisions, SFT loss and guard figures, EBM loss / gap / rank, separation probe before and after,
where the time goes, and trajectory statistics. Stages not run yet show as such, so the report of a
live run can be rebuilt at any moment. Prints the two paths as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys

from raylib.logs import setup_logging


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m jobs.report", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", metavar="RUN_DIR", help="the run folder, <run.root>/<run.name> (e.g. runs/local)")
    p.add_argument("--log-level", default=None, help="DEBUG, INFO (default), WARNING")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    setup_logging(args.log_level)
    from raylib.eval.report import write_report

    try:
        md, html = write_report(args.run_dir)
    except FileNotFoundError as e:
        print(f"report: {e}", file=sys.stderr)
        return 2
    print(json.dumps({"markdown": str(md), "html": str(html)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
