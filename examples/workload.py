"""The demo's work: download one file (simulated: a few waits and a little CPU), then verify it.

It lives in a module of its own, not in the script that runs it, so worker processes started
with ``spawn`` can import it and ``mpmq-replay rerun`` can find it by its recorded name.
"""

import hashlib
import logging
import random
import time

logger = logging.getLogger(__name__)


def download(name=None, size_mb=None, fail=False):
    """Fetch ``name`` chunk by chunk, logging progress; return its size and checksum."""
    pace = random.Random(name)  # seeded by the name: every run waits the same way
    chunks = pace.randint(3, 5)
    logger.info("connecting to mirror %d", pace.randint(1, 9))
    digest = hashlib.sha256()
    for chunk in range(1, chunks + 1):
        time.sleep(pace.uniform(0.1, 0.6))  # waiting on the network
        digest.update(name.encode() * 20_000)  # a little CPU for the bytes that arrived
        logger.info("downloaded %d%% of %d MB", 100 * chunk // chunks, size_mb)
    logger.info("verifying checksum")
    checksum = digest.hexdigest()[:12]
    if fail:
        raise ValueError(f"checksum mismatch for {name}: expected 5d41402abc4b, got {checksum}")
    return {"name": name, "size_mb": size_mb, "sha256": checksum}
