"""Import litellm lazily (~3 s): with its offline cost map and quiet.

A leaf module (it imports nothing of the project), so that the client, the transports, the
local provider and the scripted test provider share one import without an import circle.
"""

from __future__ import annotations

import os


def import_litellm():
    """The litellm module, configured offline (local cost map), quiet, without telemetry."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    litellm.suppress_debug_info = True
    litellm.telemetry = False
    # no per-call logging beyond litellm's own bookkeeping: messages are not copied into its
    # logging payloads, no callbacks run.  (Measured on 1.110.2: ~3.8 ms of CPU per call
    # either way -- its cost lookup and logging payload run regardless; the fast path in
    # llm/transport.py is what makes OpenAI-compatible servers cheap.)
    litellm.turn_off_message_logging = True
    litellm.disable_streaming_logging = True
    return litellm
