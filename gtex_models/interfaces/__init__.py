"""The interfaces layer: what people drive, on top of every other layer.

The command line (``cli``), the upload pipeline (``upload``), Try it (``try_it``), imputing into a
store (``streaming``) and the app's plot builders (``plots``). Streamlit's pages (``pages/``) call these.
"""
