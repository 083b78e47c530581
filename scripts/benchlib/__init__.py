"""`scripts/bench`, in six modules, in the order a run uses them:

    run.py      the command line, the plans (--quick, default) and the phases
    stack.py    starts the upstreams, nginx, mitmproxy's floor and the gateways; the machine
    servers.py  the programs the stack starts besides the gateways (one subcommand each)
    client.py   the load generator: MCP messages, a light HTTP/1.1 client, CPU accounting, the load
    streams.py  event delays, first events, memory per idle stream
    report.py   the summary, its tables and the targets checked against it

See docs/benchmarks.md.
"""
