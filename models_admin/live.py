"""The pulls running in this process, by task channel: what pull recovery
(`services.recover_stale_pulls`) and shutdown (`pulls.shutdown`) need to know, in a
module of its own so that the services and the pull task (`pulls`) do not import each
other.

Holding the jobs here also keeps their tasks referenced, so asyncio cannot collect one
mid-pull (Channels pitfall 2).
"""

jobs: dict = {}  # task channel -> pulls.PullJob


def live_channels() -> list[str]:
    """The task channels of this process's live pulls."""
    return list(jobs)
