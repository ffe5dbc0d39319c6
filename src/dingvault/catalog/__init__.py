"""dingvault catalog layer."""
