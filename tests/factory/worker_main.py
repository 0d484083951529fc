"""A factory worker process with ``FakeSteps`` (the kill -9 test starts and kills it).

Usage: python -m tests.factory.worker_main ADDRESS DIRECTORY (run from the repository
root with tests/ importable); prints "ready" once it polls the task queue.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from kiln.factory.activities import FactoryActivities
from kiln.factory.engine import connect, make_worker
from kiln.factory.server import Endpoint
from kiln.factory.state import FactoryState

from .fakesteps import FakeSteps


async def main(address: str, directory: Path) -> None:
    """Serve the queue until killed."""
    client = await connect(Endpoint(address))
    activities = FactoryActivities(
        FakeSteps(directory), FactoryState(directory), heartbeat_every=0.5
    )
    worker, executor = make_worker(client, activities)
    try:
        async with worker:
            print("ready", flush=True)
            await asyncio.Event().wait()
    finally:
        executor.shutdown(wait=False)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], Path(sys.argv[2])))
