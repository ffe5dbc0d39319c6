"""The demo job, kept out of the CLI module so the command stays thin."""

from __future__ import annotations


def run_demo(port: int = 0) -> int:
    from dingtalk_emulator.demo import show_demo

    return show_demo(port=port)
