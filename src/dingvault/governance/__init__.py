"""dingvault governance layer."""
