"""The app's pages (run by ``app.py``'s ``st.navigation``, never on their own).

On a freshly started server Streamlit still treats a ``pages/`` folder beside the entry point as a
legacy page list, until some session has run ``st.navigation``: a deep link (``/tissue_r2``) would
run that page's file alone, without the app's frame and sidebar. Every page imports this package
first, so in that case it switches the legacy mode off and reruns the app: ``app.py`` then routes
the same URL to the same page.
"""

from streamlit.runtime.pages_manager import PagesManager

if PagesManager.uses_pages_directory:
    import streamlit as st

    PagesManager.uses_pages_directory = False
    st.rerun()
