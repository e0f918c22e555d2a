"""The web UI: static pages (no build step) and the JSON API that only the UI needs."""
