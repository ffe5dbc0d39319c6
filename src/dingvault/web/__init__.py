"""dingvault web layer."""
