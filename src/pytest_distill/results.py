"""`python -m pytest_distill.results merge A.json B.json ... -o ALL.json` and `... show ALL.json`.

A suite split over machines (`--distill-shard I/N`) writes one results file per machine; `merge`
makes them the results file of one run, and `show` prints the summary table the terminal shows at the
end of a run, for any results file.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from .errors import ConfigError
from .report import results, table, terminal
from .report.cost import PriceTable
from .report.inputs import read_input
from .report.merge import merge


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pytest_distill.results",
                                     description="Merge and show pytest-distill results files (--distill-results).")
    commands = parser.add_subparsers(dest="command", required=True)
    join = commands.add_parser("merge", help="merge the results files of a run's shards (--distill-shard) into one")
    join.add_argument("files", nargs="+", type=Path, help="results files, two or more")
    join.add_argument("-o", "--output", type=Path, required=True, help="the merged results file to write")
    show = commands.add_parser("show", help="print a results file's summary table, as the terminal shows it")
    show.add_argument("file", type=Path, help="a results file")
    for command in (join, show):
        command.add_argument("--prices", type=Path, help="a file of lines MODEL INPUT_PER_1M OUTPUT_PER_1M (the "
                             "distill_prices the run had; default: the common OpenAI models)")
    args = parser.parse_args(argv)
    try:
        prices = PriceTable.with_defaults(read_input(args.prices, f"--prices {args.prices}") if args.prices else "")
        if args.command == "merge":
            document, notes = merge(args.files)
            results.check_destination(args.output)
            results.write(args.output, document)
            for note in notes:
                print(f"note: {note}")
            print(f"wrote {args.output}: {len(document['cases'])} cases from {len(args.files)} files")
        else:
            document = results.load(args.file, str(args.file))
        print_summary(document, prices)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def print_summary(document: dict[str, object], prices: PriceTable) -> None:
    """The table of the file's cases, summed up by the code that sums up a run."""
    records = document["cases"]
    run = document.get("run")
    roles = run.get("roles") if isinstance(run, dict) else None
    if isinstance(run, dict) and run.get("batch") is True:
        prices = prices.at_batch_rate()
    teacher = roles.get("teacher") if isinstance(roles, dict) else None
    assert isinstance(records, list)
    summary = table.of_entries([results.entry(record) for record in records], prices, teacher if isinstance(teacher, str) else "")
    width = shutil.get_terminal_size((80, 24)).columns
    print("\n".join(terminal.summary_lines(summary, width)))


if __name__ == "__main__":
    sys.exit(main())
