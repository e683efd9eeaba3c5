"""Alzheimer's pathway: how well the KEGG hsa05010 genes are recovered (Viñas et al. 2021, Fig. 5)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from gtex_models import demo, plots
from gtex_models.reference import pathway_genes
from pages._shared import download_csv, selected_model, simulated_note, tables

st.title("Alzheimer's disease pathway")
key = selected_model()
if key is not None:
    simulated_note()
    method = key.split("_", 1)[0]
    models = demo.available_models()
    keys = {models[k]: k for k in (f"{method}_alzheimer", f"{method}_all") if k in models}
    genes = pathway_genes("alzheimer")
    st.caption(f"{len(genes)} genes of the KEGG pathway hsa05010. A model trained on these genes only "
               "is shown next to the model trained on all genes (restricted to the pathway).")
    per_tissue = {label: tables(k)["per_tissue"].query("gene in @genes") for label, k in keys.items()}
    per_gene = {label: tables(k)["per_gene"].query("gene in @genes") for label, k in keys.items()}

    label = st.segmented_control("Model", list(keys), default=next(iter(keys)), required=True)
    left, right = st.columns([3, 2])
    with left:
        st.plotly_chart(plots.pathway_heatmap(per_tissue[label], title="Per-gene R² by tissue"), width="stretch")
    with right:
        n = st.slider("Genes at each end", 5, 25, 10)
        st.plotly_chart(plots.best_worst_genes(per_gene[label], n, title=f"Best and worst {n} genes"),
                        width="stretch")

    st.subheader("Find a gene")
    options = sorted(set(per_tissue[label]["gene"]))
    gene = st.selectbox("Gene", options, index=options.index("APP") if "APP" in options else None, key="gene_search",
                        placeholder="Type a gene symbol, e.g. APP, PSEN1, MAPT…")
    if gene is not None:
        st.plotly_chart(plots.gene_r2_by_tissue(per_tissue, gene), width="stretch")

    st.subheader("Pathway-only vs all-genes model")
    comparison = pd.concat({name: table.set_index("gene")["r2"] for name, table in per_gene.items()}, axis=1)
    if len(keys) == 2:
        first, second = list(keys)
        comparison["difference"] = comparison[first] - comparison[second]
    comparison = comparison.reset_index().sort_values(list(keys)[0], ascending=False)
    st.dataframe(comparison, width="stretch", hide_index=True,
                 column_config={c: st.column_config.NumberColumn(format="%.3f") for c in comparison.columns[1:]})
    download_csv(comparison, f"{method}_alzheimer_gene_r2.csv", "Download per-gene R² (CSV)", key="download_genes")
