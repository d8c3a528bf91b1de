"""The Textual workbench (``re2llm-tui run``): a thin layer over the core library.

Nothing here computes rankings, rewards or metrics: screens read the workspace and call the
core's public functions (in thread workers, or a spawned process for training).  Import
:func:`re2llm_tui.tui.app.make_app` to build the app; importing this package does not import
Textual.
"""
