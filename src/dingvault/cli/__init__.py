"""dingvault cli layer."""
