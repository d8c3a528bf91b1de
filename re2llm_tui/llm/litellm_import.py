"""Import litellm lazily (~3 s): with its offline cost map and quiet.

A leaf module (it imports nothing of the project), so that the client, the transports, the
local provider and the scripted test provider share one import without an import circle.
"""

from __future__ import annotations

import os
import sys


def import_litellm():
    """The litellm module, configured offline (local cost map), quiet, without telemetry.

    The first import also moves every object alive then into the garbage collector's
    permanent generation (``gc.freeze``): litellm leaves ~370,000 objects (its cost map),
    and each full collection then paused the event loop ~100-150 ms -- measured 0.14 ms of
    CPU per call on the fast path, and efficiency 0.86 instead of 0.94 at concurrency 32.
    """
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    first = "litellm" not in sys.modules
    import litellm

    if first:
        import gc

        gc.collect()
        gc.freeze()

    litellm.suppress_debug_info = True
    litellm.telemetry = False
    # no per-call logging beyond litellm's own bookkeeping: messages are not copied into its
    # logging payloads, no callbacks run.  (Measured on 1.110.2: ~3.8 ms of CPU per call
    # either way -- its cost lookup and logging payload run regardless; the fast path in
    # llm/transport.py is what makes OpenAI-compatible servers cheap.)
    litellm.turn_off_message_logging = True
    litellm.disable_streaming_logging = True
    return litellm
