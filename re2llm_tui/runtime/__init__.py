"""Running work apart from the UI: jobs in child processes (:mod:`.jobs`), one pool of
spawned LLM-client processes (:mod:`.pool`, :mod:`.client_procs`)."""
