"""Running the collector under uvicorn (uvloop + httptools when available)."""

from __future__ import annotations

import uvicorn

from lakehose.collector.app import create_app
from lakehose.config import Settings


def run_collector(settings: Settings, host: str, port: int) -> None:
    uvicorn.run(create_app(settings), host=host, port=port, log_level="warning",
                access_log=False, loop="auto", http="auto", timeout_graceful_shutdown=10)
