"""dingvault source layer."""
