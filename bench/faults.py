"""The pipeline fault scenario, bigger and longer than the fault test: registrations through
invite codes while Redis loses its data twice (FLUSHALL) and restarts empty twice,
PostgreSQL crashes and restarts, and every worker is SIGKILLed; then how long the pipeline
took to finish and whether anything was lost or duplicated.

    .venv/bin/python -m bench.faults --registrations 2000 --rate 50

Starts its own Redis and PostgreSQL (under .data/), like the test does.
"""

from __future__ import annotations

import argparse
import sys

from tests.fault.pipeline_scenario import ScenarioConfig, run_scenario


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--registrations", type=int, default=2_000)
    parser.add_argument("--rate", type=float, default=50.0, help="registrations per second")
    parser.add_argument("--inviters", type=int, default=100)
    parser.add_argument("--pg-down", type=float, default=10.0, help="seconds PostgreSQL is down")
    parser.add_argument("--settle-timeout", type=float, default=300.0)
    parser.add_argument("--concurrency", type=int, default=60)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--log-level", default="WARNING", help="of the six processes")
    parser.add_argument(
        "--no-faults", action="store_true", help="control run: the same stream, nothing broken"
    )
    args = parser.parse_args()
    config = ScenarioConfig(
        name="bench",
        registrations=args.registrations,
        rate_per_second=args.rate,
        inviters=args.inviters,
        pg_down_seconds=args.pg_down,
        settle_timeout_seconds=args.settle_timeout,
        concurrency=args.concurrency,
        event_give_up_seconds=max(180.0, args.settle_timeout),
        seed=args.seed,
        faults=not args.no_faults,
        log_level=args.log_level,
    )
    report = run_scenario(config)
    print(report.format())
    obs = report.observations
    print(
        f"\nnumbers: {len(obs.acknowledged)} acknowledged in {obs.stream_seconds:.1f}s "
        f"({len(obs.acknowledged) / max(obs.stream_seconds, 0.001):.1f}/s), "
        f"{len(obs.attempts)} POST attempts, pipeline finished "
        f"{obs.settle_seconds:.1f}s after the stream, "
        f"500s: {report.errors_500()} (during the outage: {report.errors_500(True)})"
    )
    return 1 if report.problems() else 0


if __name__ == "__main__":
    sys.exit(main())
