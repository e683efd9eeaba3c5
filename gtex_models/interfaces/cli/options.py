"""What the CLI's commands share: argparse value types (each error says what is wrong and the range),
the interval calibration of a checkpoint, and the result records' output files (JSON / Markdown)."""

from __future__ import annotations

import argparse
import math
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from gtex_models.common.atomic import check_output_file
from gtex_models.data.cohort import Cohort
from gtex_models.models.registry import METHODS


def at_least(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


def number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def level(text: str) -> float:
    value = number(text)
    if not 0.5 <= value <= 0.99:
        raise argparse.ArgumentTypeError(f"must be an interval level between 0.5 and 0.99 (e.g. 0.9), got {value:g}")
    return value


def share(text: str) -> float:
    value = number(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be strictly between 0 and 1 (the share of values hidden), got {value:g}")
    return value


def split_fractions(text: str) -> tuple[float, float, float]:
    """``0.6,0.15,0.25``: the train, valid and test shares of the donors."""
    from gtex_models.data.cohort import check_split_fractions

    try:
        values = [float(part) for part in text.split(",")]
        return check_split_fractions(values)
    except ValueError as error:
        detail = str(error) if "Split" in str(error) else f"{text!r} is not three comma-separated numbers"
        raise argparse.ArgumentTypeError(f"{detail} (e.g. 0.6,0.15,0.25)") from None


def shares(text: str) -> list[float]:
    """``0.2,0.5,0.8``: one or more shares of values hidden, none twice."""
    values = [share(part) for part in text.split(",") if part.strip()]
    if not values:
        raise argparse.ArgumentTypeError("no missing rate given (e.g. 0.5, or 0.2,0.5,0.8)")
    if len(set(values)) < len(values):
        raise argparse.ArgumentTypeError(f"a missing rate is listed twice in {text!r}")
    return values


def positive(text: str) -> float:
    value = number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be above 0, got {value:g}")
    return value


def age(text: str) -> float:
    value = number(text)
    if not 0 <= value < 150:
        raise argparse.ArgumentTypeError(f"must be an age in years between 0 and 150, got {value:g}")
    return value


def sex(text: str) -> str:
    from gtex_models.data.covariates import parse_sex

    if text.strip().lower() != "unknown" and parse_sex([text]) == ["unknown"]:
        raise argparse.ArgumentTypeError(f"{text!r} is not a sex; use female, male or unknown (GTEx codes: 2, 1)")
    return text


def methods(text: str) -> list[str]:
    """A comma-separated list of known methods, at least one, none twice."""
    methods = methods_or_none(text)
    if not methods:
        raise argparse.ArgumentTypeError(f"no method given; choose among {', '.join(METHODS)}")
    return methods


def methods_or_none(text: str) -> list[str]:
    """A comma-separated list of known methods, none twice; empty for ``''``."""
    methods = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise argparse.ArgumentTypeError(f"{', '.join(map(repr, unknown))} given; choose among {', '.join(METHODS)}")
    if len(set(methods)) < len(methods):
        raise argparse.ArgumentTypeError(f"a method is listed twice in {text!r}")
    return methods


def check_outputs(json_path: Path | None, markdown_path: Path | None, overwrite: bool) -> None:
    """Refuse the --json / --markdown paths before any work (see :func:`~gtex_models.common.atomic.check_output_file`)."""
    if json_path is not None and json_path == markdown_path:
        raise ValueError(f"--json and --markdown are the same file ({json_path}); give two file names.")
    for path in (json_path, markdown_path):
        if path is not None:
            check_output_file(path, overwrite)


def write_records(records: list[dict], json_path: Path | None, markdown_path: Path | None) -> None:
    import json

    from gtex_models.analysis.benchmark import to_markdown
    from gtex_models.common.atomic import atomic_file

    for path, text in ((json_path, json.dumps(records, indent=2)), (markdown_path, to_markdown(records))):
        if path is not None:
            with atomic_file(path) as tmp:
                tmp.write_text(text + "\n")


def calibration(args: argparse.Namespace, imputer, metadata: dict, cohort: Cohort):
    """The checkpoint's interval calibration, or (with a warning) one made on ``cohort``'s validation donors."""
    from gtex_models.models.calibration import check_level
    from gtex_models.studies.experiment import calibrate_checkpoint

    check_level(args.interval)
    if metadata.get("calibration") is not None:
        return metadata["calibration"]
    warnings.warn(f"{args.checkpoint} has no interval calibration; calibrating it on the cohort "
                  "(store it with `python -m gtex_models calibrate`).")
    with for_level(args.interval):
        return calibrate_checkpoint(imputer, metadata, cohort, args.seed)


@contextmanager
def for_level(level: float | None) -> Iterator[None]:
    """A calibration refusal inside the block names the level the user asked for (``No 90 % intervals: ...``)."""
    from gtex_models.models.calibration import CalibrationError

    try:
        yield
    except CalibrationError as error:
        if level is None:
            raise
        raise CalibrationError(f"No {level * 100:g} % intervals: {error}") from None


def coverage_note(record: dict) -> str:
    if "coverage" not in record:
        return ""
    return (f"; {record['interval_level']:.0%} intervals cover {record['coverage']:.1%} of the hidden values "
            f"(lowest group {record['coverage_min_group']:.1%}), median width {record['width_median']:.3f} log2 units")
