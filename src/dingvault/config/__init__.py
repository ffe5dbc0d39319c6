"""Installation settings: the config TOML (``settings``), sealed secrets (``secrets``) and the
passphrase sources (``passphrase``). The home folder itself is ``dingvault.home``."""
