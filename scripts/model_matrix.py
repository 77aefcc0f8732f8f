"""Rebuild the checked-in model matrix (docs/model_matrix.json and docs/MODEL_MATRIX.md).

    .venv/bin/python scripts/model_matrix.py                 # measure the cells not in the table yet
    .venv/bin/python scripts/model_matrix.py --fresh         # measure every cell again
    .venv/bin/python scripts/model_matrix.py --models microisp,punet --targets cpu-int8
    .venv/bin/python scripts/model_matrix.py --merge other.json  # fold in cells measured elsewhere, no work
    .venv/bin/python scripts/model_matrix.py --input-size 256x256 --json docs/model_matrix_256.json \
        --markdown docs/MODEL_MATRIX_256.md                   # every model at one size

Every cell is a real conversion in its own process (minutes for the big PyNETs); the table is
saved after each, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from edge_isp import model_matrix as mm
from edge_isp.models import list_models

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(list_models()))
    ap.add_argument("--targets", default=",".join(mm.MATRIX_TARGETS))
    ap.add_argument("--fresh", action="store_true", help="measure cells already in the table again")
    ap.add_argument("--retry-failed", action="store_true", help="measure the cells that failed again")
    ap.add_argument("--merge", type=Path, nargs="+", default=[],
                    help="tables measured by other runs (e.g. in parallel, another --json): their cells replace these")
    ap.add_argument("--input-size", default=None, help="one RAW size for every model (default: each model's own)")
    ap.add_argument("--json", type=Path, default=ROOT / "docs" / "model_matrix.json")
    ap.add_argument("--markdown", type=Path, default=ROOT / "docs" / "MODEL_MATRIX.md")
    args = ap.parse_args()
    table = mm.Matrix.load(args.json) if args.json.is_file() else mm.Matrix()
    table.machine = mm.machine_description()
    if args.input_size and table.input_size and args.input_size != table.input_size:
        raise SystemExit(f"error: {args.json} is a table at {table.input_size}, not {args.input_size}; "
                         "give another --json for another size")
    table.input_size = args.input_size or table.input_size
    if args.merge:
        for other in args.merge:
            for cell in mm.Matrix.load(other).cells:
                table.put(cell)
        table.save(args.json, args.markdown)
        print(f"merged {len(args.merge)} table(s) into {args.json} and {args.markdown}")
        return

    def show(cell: mm.Cell) -> None:
        what = (f"{cell.psnr_mean_db} / {cell.psnr_worst_db} dB, {cell.delegated}, {cell.time_s} s, "
                f"{cell.peak_rss_mb} MB") if cell.ok else f"FAILS: {cell.reason}"
        print(f"{cell.model:26s} {cell.target:14s} {what}", flush=True)

    mm.build(args.models.split(","), args.targets.split(","), table,
             save=lambda t: t.save(args.json, args.markdown), resume=not args.fresh, progress=show,
             input_size=args.input_size, retry_failed=args.retry_failed)
    table.save(args.json, args.markdown)      # also when nothing was left to measure: the view is current
    print(f"wrote {args.json} and {args.markdown}")


if __name__ == "__main__":
    main()
