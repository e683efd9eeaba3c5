"""New study (placeholder while the page is written)."""
import streamlit as st
st.title("New study")
