"""An offline OpenAI-compatible API with deterministic simulated models.

It stands apart from the rest of pytest_distill and imports nothing of it: like the real API,
it is a server the plugin talks to over HTTP. Its scores measure wiring, not model quality.
"""

from .faults import Fault
from .seed import SeedError
from .server import RequestRecord, SimServer

__all__ = ["Fault", "RequestRecord", "SeedError", "SimServer"]
