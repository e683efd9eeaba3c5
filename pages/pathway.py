"""Pathway genes: how well a KEGG pathway's genes are recovered (Viñas et al. 2021, Fig. 5: Alzheimer's disease).

The sidebar's model chooses the method; the page shows that method's pathway-only model of the
study when there is one, next to its all-genes model restricted to the pathway's genes.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from gtex_models.data.reference import PATHWAY_TITLES, PATHWAYS, pathway_genes
from gtex_models.interfaces import plots
from gtex_models.studies.study import Study
from pages._shared import current_study, download_csv, model_info, selected_model, simulated_note, tables, words

LANDMARK_GENES = {"alzheimer": "APP", "p53": "TP53"}  # the gene "Find a gene" opens on (else the first)


def pathway_models(study: Study, key: str, pathway: str) -> dict[str, str]:
    """label -> key: the selected model's method trained on ``pathway`` only (if the study has it), then on all
    genes (the selected model itself when it is an all-genes model)."""
    method = study.models[key].method
    found = {}
    for gene_set in (pathway, None):
        if study.models[key].pathway == gene_set:
            found[study.models[key].label] = key
            continue
        match = next((k for k, e in study.models.items() if e.method == method and e.pathway == gene_set), None)
        if match is not None:
            found[study.models[match].label] = match
    return found


def restricted(key: str, name: str, genes: list[str]) -> pd.DataFrame | None:
    """Model ``key``'s table ``name`` on the pathway's genes, or None when the model has no such table."""
    table = tables(key).get(name)
    return None if table is None else table[table["gene"].isin(genes)]


st.title("Pathway genes")
key = selected_model()
if key is not None:
    study = current_study()
    simulated_note()
    pathway = st.segmented_control("Pathway", list(PATHWAYS), format_func=PATHWAY_TITLES.__getitem__,
                                   default=study.models[key].pathway or next(iter(PATHWAYS)), required=True,
                                   key="pathway")
    genes = pathway_genes(pathway)
    found = pathway_models(study, key, pathway)
    word = words().group
    per_tissue = {label: t for label, k in found.items() if (t := restricted(k, "per_tissue", genes)) is not None}
    per_gene = {label: t for label, k in found.items() if (t := restricted(k, "per_gene", genes)) is not None}
    present = set().union(*(set(t["gene"]) for t in per_gene.values())) if per_gene else set()
    if not found:
        st.info(f"Study {study.title!r} has no {study.models[key].label.split(' · ')[0]} model on all genes or on "
                f"the {pathway} pathway. Pick another model in the sidebar.")
    elif not present:
        examples = ", ".join(model_info(key)[1].genes["symbol"].head(3))
        st.info(f"None of the {len(genes)} genes of the {PATHWAY_TITLES[pathway]} pathway is among the genes this "
                f"study's models were evaluated on (e.g. {examples}). The pathway views need HGNC gene symbols: a "
                "microarray cohort needs its probe IDs mapped to genes when it is imported (`--gene-map`).")
    else:
        label = next(iter(per_tissue or per_gene))
        only = study.models[found[label]].pathway == pathway
        st.caption(f"{len(present)} of the {len(genes)} genes of the {PATHWAY_TITLES[pathway]} pathway are in the "
                   f"study. Shown: **{label}**" + ("" if only else " restricted to the pathway's genes")
                   + (f", next to {', '.join(l for l in found if l != label)}." if len(found) > 1 else "."))
        left, right = st.columns([3, 2])
        with left:
            if label in per_tissue:
                st.plotly_chart(plots.pathway_heatmap(per_tissue[label], title=f"Per-gene R² by {word}", group=word),
                                width="stretch")
        with right:
            if label in per_gene:
                n = st.slider("Genes at each end", 5, 25, 10)
                st.plotly_chart(plots.best_worst_genes(per_gene[label], n, title=f"Best and worst {n} genes"),
                                width="stretch")

        st.subheader("Find a gene")
        options = sorted(present)
        first = LANDMARK_GENES.get(pathway)
        gene = st.selectbox("Gene", options, index=options.index(first) if first in present else 0, key="gene_search",
                            placeholder="Type a gene symbol, e.g. " + ", ".join(options[:3]) + "…")
        if gene is not None and per_tissue:
            st.plotly_chart(plots.gene_r2_by_tissue(per_tissue, gene, word), width="stretch")

        st.subheader("Per-gene R²" + (": pathway-only vs all-genes model" if len(per_gene) == 2 else ""))
        comparison = pd.concat({name: table.set_index("gene")["r2"] for name, table in per_gene.items()}, axis=1)
        if len(per_gene) == 2:
            first, second = list(per_gene)
            comparison["difference"] = comparison[first] - comparison[second]
        comparison = comparison.reset_index().sort_values(list(per_gene)[0], ascending=False)
        st.dataframe(comparison, width="stretch", hide_index=True,
                     column_config={c: st.column_config.NumberColumn(format="%.3f") for c in comparison.columns[1:]})
        download_csv(comparison, f"{study.models[key].method}_{pathway}_gene_r2.csv", "Download per-gene R² (CSV)",
                     key="download_genes")
