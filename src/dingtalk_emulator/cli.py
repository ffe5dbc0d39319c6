"""`dingtalk-emulator serve ...` — argparse only: the emulator does not depend on dingvault's CLI stack."""

from __future__ import annotations

import argparse
import logging
import sys

from dingtalk_emulator.config import PROFILES
from dingtalk_emulator.state import EmulatorConfig


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dingtalk-emulator", description="A fake DingTalk Open Platform with a generated Macau company."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve the emulator over HTTP (both api and oapi paths on one port)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=0, help="0 = pick a free port (printed at start)")
    serve.add_argument("--profile", choices=sorted(PROFILES), default="demo")
    serve.add_argument("--seed", type=int, default=1)
    serve.add_argument("--limits", choices=("realistic", "off"), default="realistic")
    serve.add_argument("--faults", default=None, help="fault-injection spec (see docs/emulator.md)")
    serve.add_argument(
        "--state", dest="state_dir", default=None, help="directory that persists the mutation overlay"
    )
    serve.add_argument(
        "--exclusive", action="store_true", help="also serve Exclusive DingTalk (专属钉钉) endpoints"
    )
    serve.add_argument("--scopes", default=None, help="comma-separated granted scopes (default: all)")
    serve.add_argument(
        "--monthly-quota", type=int, default=None, help="standard-edition monthly call quota (90020)"
    )
    demo = sub.add_parser("demo", help="start the demo company, print credentials, counts and sample calls")
    demo.add_argument("--port", type=int, default=0)
    demo.add_argument("--seed", type=int, default=1)
    demo.add_argument(
        "--serve", action="store_true", help="keep serving after the walkthrough (Ctrl-C stops)"
    )
    return parser


def config_from_args(args: argparse.Namespace) -> EmulatorConfig:
    scopes = None
    if args.scopes:
        scopes = {s.strip() for s in args.scopes.split(",") if s.strip()}
    return EmulatorConfig(
        port=args.port,
        host=args.host,
        profile=args.profile,
        seed=args.seed,
        limits=args.limits,
        faults=args.faults,
        state_dir=args.state_dir,
        scopes=scopes,
        exclusive=args.exclusive,
        monthly_quota=args.monthly_quota,
    )


def serve(config: EmulatorConfig) -> int:
    import uvicorn

    from dingtalk_emulator.server import create_app, free_port, uvicorn_options

    if not config.port:
        config.port = free_port(config.host)
    app, state = create_app(config)
    state.base_url = f"http://{config.host}:{config.port}"
    org = state.org
    # The app secret is not printed: read it from GET /_emulator/org.
    print(
        f"dingtalk-emulator: {state.base_url}  profile={config.profile} seed={config.seed} limits={config.limits}\n"
        f"  corpId={org.corp_id} appKey={org.app_key} agentId={org.agent_id}\n"
        f"  credentials and counts: GET {state.base_url}/_emulator/org",
        flush=True,
    )
    uvicorn.run(app, host=config.host, port=config.port, **uvicorn_options())
    return 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        if args.command == "serve":
            return serve(config_from_args(args))
        from dingtalk_emulator.demo import show_demo

        return show_demo(port=args.port, seed=args.seed, serve=args.serve)
    except ValueError as e:  # bad profile / fault spec / state dir
        print(f"dingtalk-emulator: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
