"""The process the crash tests kill with SIGKILL: writes, commits, forgets and prunes in a loop.

Protocol on stdout (one JSON object per line, flushed): ``{"ready": true}`` once open;
``{"committed": sid, "items": {key: sha256}}`` after ``commit_snapshot`` returned;
``{"forgetting": sid}`` *before* a snapshot is forgotten; ``{"export": id, "sha256": hex}`` after a
catalog export returned. Whatever was reported committed must survive the kill.
"""

from __future__ import annotations

import hashlib
import io
import random
import sys

import orjson

from dingvault.vault import Vault, prune
from dingvault.vault.backends import LocalBackend


def say(obj: dict) -> None:
    sys.stdout.write(orjson.dumps(obj).decode() + "\n")
    sys.stdout.flush()


def main() -> None:
    repo, cache, seed, passphrase = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    rng = random.Random(seed)
    vault = Vault.open(LocalBackend(repo), passphrase, cache_dir=cache)
    say({"ready": True})
    committed: list[str] = []
    round_no = 0
    while True:
        round_no += 1
        items: dict[str, str] = {}
        with vault.writer(pack_target=rng.choice([32_000, 200_000, 4_000_000]), max_pack_age=0.05) as w:
            records = []
            for i in range(rng.randint(20, 300)):
                level = rng.choice(["public", "internal", "confidential"])
                if rng.random() < 0.05:
                    data = rng.randbytes(rng.randint(300_000, 900_000))
                    ids = w.put_stream(io.BytesIO(data), level)
                else:
                    text = f'{{"seed":{seed},"round":{round_no},"i":{i},"title":"審批 合同 {rng.random()}"}}'
                    data = text.encode() * rng.randint(1, 20)
                    ids = [w.put_blob(data, level)]
                key = f"item/{seed}/{round_no}/{i}"
                records.append((key, ids))
                items[key] = hashlib.sha256(data).hexdigest()
                if rng.random() < 0.02:
                    w.flush()
            sid = w.commit_snapshot(records, tags=[f"seed-{seed}"])
        committed.append(sid)
        say({"committed": sid, "items": items})
        r = rng.random()
        if r < 0.15:
            data = rng.randbytes(rng.randint(1000, 400_000))
            eid = vault.put_catalog_export("crash-test", io.BytesIO(data))
            say({"export": eid, "sha256": hashlib.sha256(data).hexdigest()})
        elif r < 0.35 and len(committed) > 1:
            victim = committed.pop(0)
            say({"forgetting": victim})
            vault.forget_snapshot(victim)
            prune(vault)


if __name__ == "__main__":
    main()
