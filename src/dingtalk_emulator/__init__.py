"""A fake DingTalk Open Platform for tests, demos and benchmarks.

It never imports dingvault: two independent implementations of one contract
(`shared/dingtalk-api.md`) are what let the tests catch a connector that is wrong.
"""

__version__ = "0.1.0"
