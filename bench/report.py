#!/usr/bin/python3
"""Turns one benchmark run's raw measurements into its tables, files and checks.

    report.py RESULTS_DIR

Reads RESULTS_DIR/raw/*.json (written by bench/run.sh) and writes:
  summary.json    everything below, machine-readable
  ingest.csv      one line per ingest run: system, clients, run, rows, seconds, rows_per_s, peak_rss_kb
  queries.csv     one line per timed query run: system, query, run, ms
  table.md        the tables (markdown), also printed on stdout
  ingest.dat      gnuplot data for bench/ingest.gp; plot-subtitle.txt its subtitle
Checks that every system gave the same answer to every query (row count and fingerprint) and
appends any difference to problems.txt (exit status 3).
"""
import csv
import glob
import json
import os
import statistics
import sys

ORDER = ["meshd", "influxdb", "postgres", "sqlite"]
LABEL = {"meshd": "meshd", "influxdb": "InfluxDB 1.6", "postgres": "PostgreSQL 15",
         "sqlite": "raw SQLite"}
PEERS = ["influxdb", "postgres", "sqlite"]
QLABEL = {
    "last_reading": "last reading per truck",
    "avg_velocity_hourly": "avg velocity per truck per hour, 1 day",
    "low_fuel": "trucks with low fuel now",
    "truck_last_hour": "one truck's readings, last hour",
    "rows_per_fleet": "rows per fleet",
}


def load(path):
    with open(path) as f:
        return json.load(f)


def fmt_rate(v):
    return "%.0fk" % (v / 1e3) if v >= 1e4 else "%.0f" % v


def fmt_ms(v):
    return "%.1f" % v if v >= 10 else "%.2f" % v


def ratio(a, b):
    return a / b if b else float("nan")


def main():
    out = sys.argv[1]
    raw = os.path.join(out, "raw")
    machine = load(os.path.join(raw, "machine.json"))
    data = load(os.path.join(raw, "data.json"))
    ingest = [load(p) for p in sorted(glob.glob(os.path.join(raw, "ingest-*.json")))]
    sizes = {d["system"]: d for d in map(load, glob.glob(os.path.join(raw, "size-*.json")))}
    queries = {d["system"]: d for d in map(load, glob.glob(os.path.join(raw, "query-*.json")))}
    systems = [s for s in ORDER if any(i["system"] == s for i in ingest) or s in queries]
    clients = sorted({i["clients"] for i in ingest})
    problems = []

    # ---- ingest
    ing = {}
    for s in systems:
        for c in clients:
            runs = [i for i in ingest if i["system"] == s and i["clients"] == c]
            if not runs:
                continue
            rates = [r["load"]["rows_per_s"] for r in runs]
            mems = [r["peak_rss_kb"] for r in runs]
            ing[(s, c)] = {"median": statistics.median(rates), "min": min(rates),
                           "max": max(rates), "runs": rates,
                           "peak_rss_kb_median": statistics.median(mems),
                           "peak_rss_kb_max": max(mems), "rows": runs[0]["load"]["rows"]}
    with open(os.path.join(out, "ingest.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["system", "clients", "run", "rows", "seconds", "rows_per_s", "peak_rss_kb"])
        for i in ingest:
            w.writerow([i["system"], i["clients"], i["run"], i["load"]["rows"],
                        i["load"]["seconds"], i["load"]["rows_per_s"], i["peak_rss_kb"]])

    # ---- queries: times and the cross-check of the answers
    qnames = []
    for s in systems:
        for q in queries.get(s, {}).get("queries", {}):
            if q not in qnames:
                qnames.append(q)
    with open(os.path.join(out, "queries.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["system", "query", "run", "ms", "rows", "fingerprint"])
        for s in systems:
            for q, d in queries.get(s, {}).get("queries", {}).items():
                for k, t in enumerate(d["times_ms"], 1):
                    w.writerow([s, q, k, t, d["rows"], d["fingerprint"]])
    agree = {}
    for q in qnames:
        answers = {s: (queries[s]["queries"][q]["rows"], queries[s]["queries"][q]["fingerprint"])
                   for s in systems if q in queries.get(s, {}).get("queries", {})}
        agree[q] = len(set(answers.values())) <= 1
        if not agree[q]:
            problems.append("query %s: the systems' answers differ: %s" % (q, ", ".join(
                "%s %d rows (%s)" % (s, n, fp) for s, (n, fp) in answers.items())))

    # ---- tables
    L = []
    nrows = data["lp_rows"]
    L.append("Data: %d trucks x %s at 10 s, seed %d (generator: %s): %d rows (%d readings, "
             "%d diagnostics; %d rows have no name tag and are quarantined by meshd)." % (
                 machine["scale"], machine["duration"], machine["seed"], machine["generator"],
                 nrows, data["readings_rows"], data["diagnostics_rows"],
                 nrows - data["readings_keyed"] - data["diagnostics_keyed"]))
    L.append("Machine: %d cores (%s), %.1f GiB RAM, %s; %s, %s, %s, SQLite %s." % (
        machine["cores"], machine["cpu"], machine["mem_total_kb"] / 1048576, machine["os"],
        machine["meshd"] + (" " + machine["meshd_args"] if machine["meshd_args"] else ""),
        machine["influxd"], machine["postgres"], machine["sqlite"]))
    L.append("")
    L.append("### Ingest: rows/s, median of %d runs [min - max]; higher is better" %
             machine["runs"])
    L.append("")
    hdr = ["system"] + ["%d client%s" % (c, "s" if c > 1 else "") for c in clients] + \
        ["peak memory MiB (%s)" % "/".join("%dc" % c for c in clients), "disk MiB after load"]
    L.append("| " + " | ".join(hdr) + " |")
    L.append("|" + "---|" * len(hdr))
    for s in systems:
        cells = [LABEL[s]]
        for c in clients:
            d = ing.get((s, c))
            cells.append("%s [%s - %s]" % (fmt_rate(d["median"]), fmt_rate(d["min"]),
                                           fmt_rate(d["max"])) if d else "-")
        cells.append("/".join("%.0f" % (ing[(s, c)]["peak_rss_kb_median"] / 1024)
                              if (s, c) in ing else "-" for c in clients))
        cells.append("%.1f" % (sizes[s]["disk_kb"] / 1024) if s in sizes else "-")
        L.append("| " + " | ".join(cells) + " |")
    if "meshd" in systems:
        L.append("")
        L.append("meshd / peer (ingest rows/s: higher is better; memory and disk: lower is better):")
        L.append("")
        hdr = ["meshd / peer"] + ["ingest %dc" % c for c in clients] + \
            ["memory %dc" % c for c in clients] + ["disk"]
        L.append("| " + " | ".join(hdr) + " |")
        L.append("|" + "---|" * len(hdr))
        for p in PEERS:
            if p not in systems:
                continue
            cells = [LABEL[p]]
            for c in clients:
                a, b = ing.get(("meshd", c)), ing.get((p, c))
                cells.append("%.2fx" % ratio(a["median"], b["median"]) if a and b else "-")
            for c in clients:
                a, b = ing.get(("meshd", c)), ing.get((p, c))
                cells.append("%.2fx" % ratio(a["peak_rss_kb_median"], b["peak_rss_kb_median"])
                             if a and b else "-")
            cells.append("%.2fx" % ratio(sizes["meshd"]["disk_kb"], sizes[p]["disk_kb"])
                         if "meshd" in sizes and p in sizes else "-")
            L.append("| " + " | ".join(cells) + " |")
    if qnames:
        L.append("")
        L.append("### Queries: ms per query (client round trip), median of %d runs after a "
                 "warm-up [min - max]; lower is better" % machine["query_runs"])
        L.append("")
        hc = sorted({queries[s].get("http_client") for s in queries} - {None})
        if hc:
            L.append("Clients: psycopg2 (C) for PostgreSQL, Python's sqlite3 for raw SQLite, and "
                     "for meshd and InfluxDB %s." % (
                         "a socket that reads only the status, Content-Length and chunks "
                         "(queries.py --http-client lean)" if hc == ["lean"] else
                         "Python's http.client (--http-client stdlib)" if hc == ["stdlib"] else
                         "mixed HTTP clients (%s)" % ", ".join(hc)))
            L.append("")
        hdr = ["query"] + [LABEL[s] for s in systems if s in queries] + \
            ["meshd / %s" % LABEL[p] for p in PEERS if "meshd" in queries and p in queries] + \
            ["rows", "same answer"]
        L.append("| " + " | ".join(hdr) + " |")
        L.append("|" + "---|" * len(hdr))
        for q in qnames:
            cells = [QLABEL.get(q, q)]
            for s in systems:
                if s not in queries:
                    continue
                d = queries[s]["queries"].get(q)
                cells.append("%s [%s - %s]" % (fmt_ms(d["median_ms"]), fmt_ms(d["min_ms"]),
                                               fmt_ms(d["max_ms"])) if d else "-")
            for p in PEERS:
                if "meshd" in queries and p in queries:
                    a, b = queries["meshd"]["queries"].get(q), queries[p]["queries"].get(q)
                    cells.append("%.2fx" % ratio(a["median_ms"], b["median_ms"]) if a and b
                                 else "-")
            rows = sorted({queries[s]["queries"][q]["rows"] for s in queries
                           if q in queries[s]["queries"]})
            cells.append("/".join(str(r) for r in rows))
            cells.append("yes" if agree[q] else "**NO**")
            L.append("| " + " | ".join(cells) + " |")
        L.append("")
        L.append("(meshd / peer for queries is a time ratio: below 1 meshd is faster.)")
        srv = ["%s %s" % (QLABEL.get(q, q), fmt_ms(queries["meshd"]["queries"][q]["server_median_ms"]))
               for q in qnames if "meshd" in queries and
               "server_median_ms" in queries["meshd"]["queries"].get(q, {})]
        if srv:
            L.append("")
            L.append("meshd's own time for each query (elapsed_ms of its answers, median, ms; the "
                     "rest of the round trip is HTTP and JSON): " + "; ".join(srv) + ".")

    # ---- issue 3's targets
    targets = []
    if "meshd" in systems and "influxdb" in systems:
        for c in clients:
            a, b = ing.get(("meshd", c)), ing.get(("influxdb", c))
            if a and b:
                r = ratio(a["median"], b["median"])
                targets.append(("ingest >= 3x InfluxDB, %d client%s" % (c, "s" if c > 1 else ""),
                                r >= 3, "%.2fx (%s vs %s rows/s)%s" % (
                                    r, fmt_rate(a["median"]), fmt_rate(b["median"]),
                                    "" if r >= 3 else ": needs %.1fx more" % (3 / r))))
    if "meshd" in queries:
        for p in ("influxdb", "postgres"):
            if p not in queries:
                continue
            for q in qnames:
                a, b = queries["meshd"]["queries"].get(q), queries[p]["queries"].get(q)
                if a and b:
                    r = ratio(a["median_ms"], b["median_ms"])
                    targets.append(("%s: no slower than %s" % (QLABEL.get(q, q), LABEL[p]),
                                    r <= 1, "%.2fx the time (%s vs %s ms)" % (
                                        r, fmt_ms(a["median_ms"]), fmt_ms(b["median_ms"]))))
        lr = queries["meshd"]["queries"].get("last_reading")
        if lr:
            targets.append(("last reading per series < 10 ms", lr["median_ms"] < 10,
                            "%s ms%s" % (fmt_ms(lr["median_ms"]), "" if lr["median_ms"] < 10 else
                                         ": %.1fx too slow" % (lr["median_ms"] / 10))))
    if "meshd" in sizes and "influxdb" in sizes:
        r = ratio(sizes["meshd"]["disk_kb"], sizes["influxdb"]["disk_kb"])
        targets.append(("data on disk <= InfluxDB's", r <= 1, "%.2fx (%.1f vs %.1f MiB)" % (
            r, sizes["meshd"]["disk_kb"] / 1024, sizes["influxdb"]["disk_kb"] / 1024)))
    if targets:
        L.append("")
        L.append("### Issue 3's targets (meshd with encryption at rest on, HTTP without TLS like the peers)")
        L.append("")
        L.append("| target | met | meshd |")
        L.append("|---|---|---|")
        for name, ok, how in targets:
            L.append("| %s | %s | %s |" % (name, "yes" if ok else "**no**", how))
    # ---- warnings and errors in the servers' logs
    import re
    pats = {"meshd": re.compile(r"level=(warn|error)"), "influxd": re.compile(r"lvl=(warn|error)|\[(warn|error)\]|error", re.I),
            "postgres": re.compile(r"\b(WARNING|ERROR|FATAL|PANIC):")}
    warn = {}
    for path in sorted(glob.glob(os.path.join(out, "logs", "*.log"))):
        kind = next((k for k in pats if os.path.basename(path).endswith(k + ".log")), None)
        if not kind:
            continue
        with open(path, errors="replace") as f:
            for line in f:
                if pats[kind].search(line):
                    warn.setdefault(kind, []).append(line.strip()[:300])
    if warn:
        L.append("")
        L.append("### Warnings and errors in the servers' logs (logs/)")
        L.append("")
        for k, lines in warn.items():
            L.append("- %s: %d line(s); first: `%s`" % (k, len(lines), lines[0].replace("`", "'")))
    text = "\n".join(L) + "\n"
    with open(os.path.join(out, "table.md"), "w") as f:
        f.write(text)
    print(text)

    # ---- plot data: one line per system, median/min/max per client count
    with open(os.path.join(out, "ingest.dat"), "w") as f:
        f.write("# system " + " ".join("c%d_median c%d_min c%d_max" % (c, c, c)
                                       for c in clients) + "\n")
        for s in systems:
            vals = []
            for c in clients:
                d = ing.get((s, c), {"median": 0, "min": 0, "max": 0})
                vals += ["%.1f" % d["median"], "%.1f" % d["min"], "%.1f" % d["max"]]
            f.write('"%s" %s\n' % (LABEL[s], " ".join(vals)))
    with open(os.path.join(out, "plot-subtitle.txt"), "w") as f:
        f.write("%d rows (%d trucks x %s at 10 s), batches of %d, median of %d runs, "
                "bars min-max; %d cores" % (nrows, machine["scale"], machine["duration"],
                                            machine["batch"], machine["runs"], machine["cores"]))

    summary = {"machine": machine, "data": data,
               "ingest": {"%s/%d" % k: v for k, v in ing.items()},
               "size": sizes, "queries": {s: queries[s]["queries"] for s in queries},
               "answers_agree": agree, "log_warnings": warn,
               "targets": [{"target": n, "met": ok, "meshd": h} for n, ok, h in targets],
               "problems": problems}
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    if problems:
        with open(os.path.join(out, "problems.txt"), "a") as f:
            for p in problems:
                f.write(p + "\n")
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
