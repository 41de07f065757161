"""The command line (SPEC 6.1): parses, calls `service`, prints.

`app` holds the Click group with its global options, the one-line errors and exit codes, and `main`, the
console script; each other module one family of commands:

    events    ingest, derive, rejects, forget          events in, derived, listed, erased
    reports   report, compare, spark-derive            reports out, what-if, and the lakes they can read
    sources   pull                                     a helpdesk's history through its API
    users     users ..., audit                         who may log in, and what was done
    schedules schedules ...                            reports e-mailed on a schedule
    serve     serve                                    the web app and the HTTP API
    demo      demo, generate                           a believable brand to try it on
"""

from convoscope.cli import demo, events, reports, schedules, serve, sources, users
from convoscope.cli.app import App, cli, fail, main

for command in (events.ingest, events.derive, events.rejects, events.forget, reports.report, reports.compare,
                reports.spark_derive, sources.pull, users.users, users.audit, schedules.schedules, serve.serve,
                demo.demo, demo.generate):
    cli.add_command(command)

__all__ = ["App", "cli", "fail", "main"]
