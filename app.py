"""The knowledge base in the browser: ask and read quoted, cited answers; manage the documents.

A thin Streamlit layer over the library: `index` answers, `ingest` saves
uploads, deletes documents and rebuilds in the background. Model and index
load once per process (`ui.resources`); a rebuild never interrupts
answering, because questions go to the published index until the new one
replaces it.

This script is the entry point: it sets up the page and the navigation
between the pages in `app_pages/` (Ask, Documents, and the hidden Document
view that citations open); each page is a few lines over a module of `ui/`.
Run it with `make run` (or `python -m ui.serve app.py`, which also accepts
very long links; `streamlit run app.py` works too). KB_CORPUS, KB_INDEX and
KB_EMBEDDER choose the folders and the model (`index.config.Config`);
KB_READ_ONLY, KB_ADMIN_PASSWORD and KB_UPLOAD_QUOTA_MB who may change what
(`ui.access.Access`); KB_WATCH=1 watches the corpus folder (`ingest.watch`). Markdown comes from `ui.markdown`: document text is
always escaped.
"""

from __future__ import annotations

import streamlit as st

st.set_page_config(page_title="Knowledge base", page_icon="📚", layout="centered")
navigation = st.navigation(
    [
        st.Page("app_pages/ask.py", title="Ask", icon=":material/search:", default=True),
        st.Page("app_pages/documents.py", title="Documents", icon=":material/folder_open:", url_path="documents"),
        st.Page("app_pages/gaps.py", title="Gaps", icon=":material/help_center:", url_path="gaps"),
        st.Page("app_pages/document.py", title="Document", url_path="document", visibility="hidden"),
    ],
    position="top",
)
# On a phone the top navigation folds into the sidebar button: the pages are linked on the page instead.
with st.container(horizontal=True, key="phone-nav"):
    st.page_link("app_pages/ask.py", label="Ask", icon=":material/search:")
    st.page_link("app_pages/documents.py", label="Documents", icon=":material/folder_open:")
    st.page_link("app_pages/gaps.py", label="Gaps", icon=":material/help_center:")
# Our own CSS, nothing from documents: a phone's title should not take a quarter of the screen, and the
# page links show only where the top navigation is folded away.
st.html(
    "<style>.st-key-phone-nav { display: none !important; }"
    "@media (max-width: 640px) { h1 { font-size: 2rem !important; } .st-key-phone-nav { display: flex !important; } }"
    "</style>"
)
navigation.run()
