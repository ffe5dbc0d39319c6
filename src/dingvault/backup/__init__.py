"""dingvault backup layer."""
