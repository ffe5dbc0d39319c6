"""DingTalk endpoint families. Each module exposes `routes(state)` and `register(state)` (see state.py).

`FAMILY_MODULES` is the list `server.create_app` imports, in this order.
"""

FAMILY_MODULES: tuple[str, ...] = (
    "auth",
    "contacts",
    "approvals",
    "attendance",
    "calendar",
    "todo",
    "reports",
    # files, documents, groups, robot messages, exclusive edition
    "storage",
    "wiki",
    "docs",
    "groups",
    "robot",
    "exclusive",
)
