"""The Streamlit front end (`bench serve ui`): pages that read everything from the API over HTTP."""
