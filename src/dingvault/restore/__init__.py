"""dingvault restore layer."""
