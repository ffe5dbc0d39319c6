"""dingvault: self-hosted backup, archiving and compliance for DingTalk."""

__version__ = "0.1.0"
