"""The mixed load's report: a table, and a block for ``docs/benchmarks.md``."""

from __future__ import annotations

from backstory_tools.mixedload.kinds import KINDS


def _ms(lat: dict, key: str) -> str:
    v = lat.get(key)
    return "-" if v is None else f"{v:,.0f}" if v >= 100 else f"{v:.1f}"


def _statuses(s: dict) -> str:
    return " ".join(f"{k}×{v}" for k, v in s.items()) or "-"


def print_report(report: dict) -> None:
    print(f"mixed load on {report['archive']}, seed {report['seed']}, commit {report['commit']}")
    print("mix: " + ", ".join(f"{k} {w:g}" for k, w in report["weights"].items() if w > 0))
    print(f"memory at ready: {report['memory_at_ready']['unique_mb']} MB ({report['memory_at_ready']['measure']})")
    for p in report["phases"]:
        o = p["overall"]
        print(f"\n{p['clients']} clients, {p['mix_span_s']} s ({p['elapsed_s']} s with the last huge request): {p['requests']} requests, {p['errors']} errors "
              f"({p['fivexx']} 5xx), {o['throughput_per_s']}/s without the huge ones; "
              f"server CPU {p['server_cpu_ms_per_request']} ms a request, this client's {p['client_cpu_ms_per_request']} ms")
        print(f"{'kind':16s} {'expect':>11s} {'count':>6s} {'p50 ms':>8s} {'p95 ms':>8s} {'p99 ms':>8s} {'/s':>6s} {'errors':>6s}  statuses")
        rows = [*p["kinds"].items(), ("all but huge", {"expected": "", **o})]
        for name, k in rows:
            if not k["count"] and name != "all but huge":
                continue
            lat = k["latency_ms"]
            extra = f" (not cached {k['not_cached']})" if k.get("not_cached") else ""
            print(f"{name:16s} {k['expected']:>11s} {k['count']:6d} {_ms(lat, 'p50'):>8s} {_ms(lat, 'p95'):>8s} "
                  f"{_ms(lat, 'p99'):>8s} {k['throughput_per_s']:6.2f} {k['errors']:6d}  {_statuses(k['statuses'])}{extra}")
        mem = p["memory"]
        print("memory (MB, unique resident): before {} → after {} → {} s idle {}".format(
            mem["before"]["unique_mb"], mem["after"]["unique_mb"], p["settle_s"], mem["settled"]["unique_mb"]))
        for when in ("before", "after", "settled"):
            rss = ", ".join(f"{role} {mb}" for role, mb in mem[when]["per_process_rss_mb"].items())
            print(f"  RSS {when:8s} {rss}")
        print(f"load average (1/5/15 min): before {p['loadavg']['before']}, after {p['loadavg']['after']}")
        if p["error_kinds"]:
            print("errors: " + ", ".join(f"{k} ×{v}" for k, v in p["error_kinds"].items()))
    print(f"\n{report['errors']} errors in all")


def _machine(m: dict) -> str:
    return f"{m.get('cores')} cores ({m.get('cpu') or 'CPU unknown'}), {m.get('memory') or 'RAM unknown'}"


def markdown(report: dict) -> str:
    lines = [
        f"### Mixed load ({report['started_at']}, commit `{report['commit']}`)",
        "",
        "Command: `" + " ".join([".venv/bin/python scripts/load.py", report["argv"]]).strip() + "`",
        f"on {report['archive']}; {_machine(report['machine'])}. Each client sends one request and waits for the answer; "
        f"kinds drawn with seed {report['seed']} and weights (%) "
        + ", ".join(f"{k} {w:g}" for k, w in report["weights"].items() if w > 0)
        + f". Huge requests: a text of {report['sizes']['huge_text_chars']:,} characters and an HTML page in a body of "
        f"{report['sizes']['huge_html_body_bytes']:,} bytes (limit {report['sizes']['max_body_bytes']:,}), at most "
        f"{report['huge_in_flight']} in flight, answered within {report['huge_timeout_s']:g} s or counted as errors; "
        "their latency is not in the overall row. "
        "Errors = 5xx, transport errors, timeouts, or a status other than the one expected for the kind. "
        "Memory = unique resident pages of the server and its spaCy processes.",
        "",
        "| clients | s | requests | errors | 5xx | req/s (no huge) | p50 ms | p95 ms | p99 ms | huge p50 / max ms "
        "| memory MB before → after → settled | load avg after |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for p in report["phases"]:
        o, mem = p["overall"], p["memory"]
        huge_cell = "; ".join(f"{k} {_ms(v['latency_ms'], 'p50')} / {_ms(v['latency_ms'], 'max')}"
                              for k, v in p["kinds"].items() if KINDS[k].huge and v["count"]) or "-"
        lines.append(
            f"| {p['clients']} | {p['mix_span_s']:.0f} | {p['requests']:,} | {p['errors']} | {p['fivexx']} "
            f"| {o['throughput_per_s']} | {_ms(o['latency_ms'], 'p50')} | {_ms(o['latency_ms'], 'p95')} "
            f"| {_ms(o['latency_ms'], 'p99')} | {huge_cell} | {mem['before']['unique_mb']} → {mem['after']['unique_mb']} "
            f"→ {mem['settled']['unique_mb']} | {' '.join(str(x) for x in p['loadavg']['after'])} |")
    for p in report["phases"]:
        lines += ["", f"{p['clients']} clients, per kind:", "",
                  "| kind | expected | count | p50 ms | p95 ms | p99 ms | req/s | errors | statuses |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for name, k in p["kinds"].items():
            if k["count"]:
                lat = k["latency_ms"]
                lines.append(f"| {name} | {k['expected']} | {k['count']:,} | {_ms(lat, 'p50')} | {_ms(lat, 'p95')} "
                             f"| {_ms(lat, 'p99')} | {k['throughput_per_s']} | {k['errors']} | {_statuses(k['statuses'])} |")
    return "\n".join(lines)
