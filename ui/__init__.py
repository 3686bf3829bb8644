"""Presentation for people in the browser: the Streamlit page's building blocks (app.py is the page)."""
