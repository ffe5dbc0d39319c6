"""DingTalk endpoint families. Each module exposes `routes(state)` and `register(state)` (see state.py).

`FAMILY_MODULES` is the list `server.create_app` imports; a module missing from the tree (another
engineer's, not written yet) is skipped, so the emulator always starts.
"""

FAMILY_MODULES: tuple[str, ...] = (
    "auth",
    "contacts",
    "approvals",
    "attendance",
    "calendar",
    "todo",
    "reports",
    # files engineer
    "storage",
    "wiki",
    "docs",
    "groups",
    "robot",
    "exclusive",
)
