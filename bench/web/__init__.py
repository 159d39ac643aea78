"""The FastAPI service and the Streamlit UI; arriving with the web-service issue."""
