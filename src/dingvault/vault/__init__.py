"""dingvault vault layer."""
