"""CLI of issue #14: evaluate / benchmark --pattern, panel design, evaluate on another cohort; bad input -> exit 2."""

from __future__ import annotations

import json
import warnings

import pytest

from gtex_models.analysis.other_cohort import shift_cohort
from gtex_models.analysis.panels import parse_panel
from gtex_models.data.cohort import Cohort
from gtex_models.interfaces.cli.main import main
from tests.test_patterns import symbols_only_cohort


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A simulated cohort, a per-tissue mean checkpoint trained on it, a shifted copy; a symbols-only cohort and its model."""
    root = tmp_path_factory.mktemp("cli14")
    assert main(["simulate", "--out", str(root / "cohort"), "--donors", "20", "--genes", "400", "--seed", "2"]) == 0
    assert main(["train", "--cohort", str(root / "cohort"), "--method", "mean", "--out", str(root / "mean.safetensors")]) == 0
    shift_cohort(Cohort.load(root / "cohort"), seed=1).save(root / "shifted")
    symbols_only_cohort(n_groups=3).save(root / "symbols")
    assert main(["train", "--cohort", str(root / "symbols"), "--method", "knn", "--out", str(root / "sym.safetensors")]) == 0
    return root


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_evaluate_under_each_pattern(setup, capsys) -> None:
    base = ["evaluate", "--checkpoint", setup / "mean.safetensors", "--cohort", setup / "cohort"]
    for pattern, label in (("mcar", "(mcar)"), ("mnar", "(mnar (slope 2))"), ("block", "(block (50 genes))")):
        code, out, _ = run(capsys, *base, "--pattern", pattern, "--json", setup / f"{pattern}.json")
        assert code == 0 and label in out
        assert json.loads((setup / f"{pattern}.json").read_text())[0]["pattern"] == label[1:-1]


def test_evaluate_a_panel_reports_matches_and_groups(setup, capsys) -> None:
    panel = setup / "panel.txt"
    panel.write_text("TP53\nAPOE\nNOT_A_GENE\n")
    code, out, _ = run(capsys, "evaluate", "--checkpoint", setup / "mean.safetensors", "--cohort", setup / "cohort",
                       "--pattern", "panel", "--panel", panel)
    assert code == 0
    assert "panel of 2 of the 400 genes" in out and "1 unmatched: NOT_A_GENE" in out
    assert "over 398 genes" in out and "per group" in out


@pytest.mark.parametrize("panel_text, extra, message", [
    ("", [], "lists no gene"),
    ("NOPE1\nNOPE2\n", [], "None of the panel"),
    (None, [], "covers all"),
    ("TP53\n", ["--pattern", "mcar"], "--panel needs --pattern panel"),
])
def test_evaluate_refuses_bad_panels(setup, capsys, tmp_path, panel_text, extra, message) -> None:
    panel = tmp_path / "panel.txt"
    if panel_text is None:  # every gene of the cohort
        panel_text = "\n".join(Cohort.load(setup / "cohort").genes["symbol"])
    panel.write_text(panel_text)
    code, out, err = run(capsys, "evaluate", "--checkpoint", setup / "mean.safetensors", "--cohort", setup / "cohort",
                         "--pattern", "panel", "--panel", panel, *extra)
    assert code == 2 and err.startswith("error: ") and message in err and out == ""


def test_benchmark_with_several_patterns(setup, capsys, tmp_path) -> None:
    code, out, _ = run(capsys, "benchmark", "--cohort", setup / "cohort", "--methods", "mean,oracle",
                       "--pattern", "mcar,mnar,block", "--json", tmp_path / "b.json")
    assert code == 0
    records = json.loads((tmp_path / "b.json").read_text())
    assert [r["pattern"] for r in records] == ["mcar", "mnar (slope 2)", "block (50 genes)"] * 2
    assert "| oracle | inductive | mnar (slope 2) |" in out
    code, _, err = run(capsys, "benchmark", "--cohort", setup / "cohort", "--methods", "mean", "--pattern", "mnra")
    assert code == 2 and "--pattern 'mnra'" in err


def test_panel_design_writes_a_panel_and_compares_strategies(setup, capsys) -> None:
    out_file = setup / "designed.txt"
    code, out, _ = run(capsys, "panel", "design", "--checkpoint", setup / "mean.safetensors", "--cohort",
                       setup / "cohort", "--size", "40", "--out", out_file)
    assert code == 0 and "designed" in out and "most-variable" in out and "random" in out
    assert len(parse_panel(out_file.read_text())) == 40
    code, out, _ = run(capsys, "evaluate", "--checkpoint", setup / "mean.safetensors", "--cohort", setup / "cohort",
                       "--pattern", "panel", "--panel", out_file)
    assert code == 0 and "panel of 40 of the 400 genes (40 matched by Ensembl ID" in out


@pytest.mark.parametrize(("size", "message"), [("0", "argument --size: must be at least 1, got 0"),
                                               ("400", "panel size must be between 1 and 399"),
                                               ("1000", "panel size must be between 1 and 399")])
def test_panel_design_refuses_sizes_outside_the_genes(setup, capsys, tmp_path, size, message) -> None:
    code, out, err = run(capsys, "panel", "design", "--checkpoint", setup / "mean.safetensors", "--cohort",
                         setup / "cohort", "--size", size, "--out", tmp_path / "p.txt")
    assert code == 2 and message in err
    assert not (tmp_path / "p.txt").exists()


def test_panel_design_and_patterns_on_a_symbols_only_cohort(setup, capsys) -> None:
    out_file = setup / "sym_panel.txt"
    code, out, _ = run(capsys, "panel", "design", "--checkpoint", setup / "sym.safetensors", "--cohort",
                       setup / "symbols", "--size", "5", "--out", out_file)
    assert code == 0 and len(parse_panel(out_file.read_text())) == 5
    recommendation = out.split("Which model for this panel (validation donors, R² of the genes outside it): ")[1]
    scores = dict(part.rsplit(" ", 1) for part in recommendation.split(". Recommended: ")[0].split(", "))
    best = max(scores, key=lambda m: float(scores[m]))
    assert set(scores) == {"knn", "mean", "gauss"} and f"Recommended: {best} (test R² " in out  # the model: KNN
    if best != "knn":
        assert f"To impute with it: python -m gtex_models train --method {best} --cohort" in out
    code, out, _ = run(capsys, "evaluate", "--checkpoint", setup / "sym.safetensors", "--cohort", setup / "symbols",
                       "--pattern", "panel", "--panel", out_file)
    assert code == 0 and "5 by symbol" in out and "group 2" in out


def test_model_scored_panel_design_on_a_symbols_only_cohort(setup, capsys, tmp_path) -> None:
    code, out, _ = run(capsys, "panel", "design", "--checkpoint", setup / "sym.safetensors", "--cohort",
                       setup / "symbols", "--size", "5", "--strategy", "model-scored", "--out", tmp_path / "p.txt")
    assert code == 0 and "(model-scored)" in out and "model-scored" in out.split("R² of the genes")[1]
    assert len(parse_panel((tmp_path / "p.txt").read_text())) == 5
    symbols = Cohort.load(setup / "symbols")
    no_valid = symbols.samples.assign(split=symbols.samples["split"].replace("valid", "train"))
    Cohort(symbols.x, symbols.genes, no_valid, symbols.transform, symbols.meta).save(tmp_path / "no_valid")
    code, _, err = run(capsys, "panel", "design", "--checkpoint", setup / "sym.safetensors", "--cohort",
                       tmp_path / "no_valid", "--size", "5", "--strategy", "model-scored", "--out", tmp_path / "q.txt")
    assert code == 2 and "validation donors" in err and not (tmp_path / "q.txt").exists()


def test_evaluate_on_another_cohort_compares_harmonisations(setup, capsys) -> None:
    code, out, _ = run(capsys, "evaluate", "--checkpoint", setup / "mean.safetensors", "--cohort", setup / "shifted",
                       "--own-cohort", setup / "cohort", "--harmonise", "all", "--rates", "0.2,0.8")
    assert code == 0
    assert "genes: 360 of the model's 400 in the cohort" in out and "40 absent" in out
    lines = [line for line in out.splitlines() if line.lstrip().startswith(("own", "other"))]
    assert [line.split()[-3] if line.startswith("other") else "training" for line in lines][:1] == ["training"]
    assert sum("other cohort" in line for line in lines) == 3  # own, training, quantile


def test_group_map_maps_groups_and_refuses_unknown_tissues(setup, capsys, tmp_path) -> None:
    shifted = Cohort.load(setup / "shifted")
    renamed = shifted.samples.assign(tissue=shifted.samples["tissue"].map(lambda t: "tumour" if t == "Whole Blood" else t))
    Cohort(shifted.x, shifted.genes, renamed, shifted.transform, shifted.meta).save(tmp_path / "renamed")
    (tmp_path / "map.tsv").write_text("group\ttissue\ntumour\tWhole Blood\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code, out, _ = run(capsys, "evaluate", "--checkpoint", setup / "mean.safetensors", "--cohort",
                           tmp_path / "renamed", "--group-map", tmp_path / "map.tsv")
    assert code == 0 and "tumour -> Whole Blood" in out
    (tmp_path / "bad.tsv").write_text("tumour\tWhole Blod\n")
    code, _, err = run(capsys, "evaluate", "--checkpoint", setup / "mean.safetensors", "--cohort",
                       tmp_path / "renamed", "--group-map", tmp_path / "bad.tsv")
    assert code == 2 and "Whole Blood" in err  # did you mean


def test_panel_design_never_replaces_a_file_without_overwrite(setup, capsys, tmp_path) -> None:
    mine = tmp_path / "notes.txt"
    mine.write_text("my notes")
    args = ["panel", "design", "--checkpoint", setup / "mean.safetensors", "--cohort", setup / "cohort",
            "--size", "10", "--out", mine]
    code, _, err = run(capsys, *args)
    assert code == 2 and "already exists" in err and mine.read_text() == "my notes"
    code, _, _ = run(capsys, *args, "--overwrite")
    assert code == 0 and len(parse_panel(mine.read_text())) == 10
