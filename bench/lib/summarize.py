#!/usr/bin/env python3
"""summarize.py RESULTS [MARKDOWN] - the table bench/registry prints.

RESULTS has one measurement a line, tab-separated:
    workload  metric  unit  better(hi|lo)  side  round  value
where side is "ref", "r1" (our cluster at replication 1), "r2" or "limit",
and value is a number or "fail". For every (workload, metric), in the order
first seen, prints the median of each side, and the ratio ours/reference of
the medians. Then the issue's targets, each with "holds" or "MISSES" and the
numbers it compared. With MARKDOWN, writes the same table there as Markdown.
"""
import statistics
import sys

SIDES = ("ref", "r1", "r2")


def load(path):
    """Returns ({(workload, metric): {side: [values]}}, units, order)."""
    data, meta, order = {}, {}, []
    with open(path) as f:
        for line in f:
            fields = line.rstrip("\n").split("\t")
            if len(fields) != 7:
                continue
            wl, metric, unit, better, side, _round, value = fields
            key = (wl, metric)
            if key not in data:
                data[key], meta[key] = {}, (unit, better)
                order.append(key)
            data[key].setdefault(side, []).append(value)
    return data, meta, order


def median(values):
    """Median of the numeric values, None if there are none; a failed run
    among them makes the result None too (a median that hides failures lies)."""
    if not values or any(v == "fail" for v in values):
        return None
    return statistics.median(float(v) for v in values)


def fmt(v):
    if v is None:
        return "n/a"
    if v >= 1000:
        return "%.0f" % v
    if v >= 10:
        return "%.1f" % v
    return "%.3g" % v


def ratio(ours, ref):
    if ours is None or ref is None or ref == 0:
        return "n/a"
    return "%.2fx" % (ours / ref)


def rows(data, meta, order):
    """The table: one row per (workload, metric) that is not a machine limit."""
    out = []
    for key in order:
        if "limit" in data[key]:
            continue
        unit, better = meta[key]
        m = {s: median(data[key].get(s)) for s in SIDES}
        out.append([key[0], "%s (%s, %s)" % (key[1], unit, "higher better" if better == "hi"
                                              else "lower better"),
                    fmt(m["ref"]), fmt(m["r1"]), ratio(m["r1"], m["ref"]),
                    fmt(m["r2"]), ratio(m["r2"], m["ref"])])
    return out


def limits(data, meta, order):
    parts = []
    for key in order:
        if "limit" in data[key]:
            parts.append("%s %s %s" % (key[1], fmt(median(data[key]["limit"])), meta[key][0]))
    return "limits: " + "; ".join(parts) if parts else "limits: not measured"


def get(data, wl, metric, side):
    return median(data.get((wl, metric), {}).get(side))


def check(name, ok_values, cond, detail):
    if any(v is None for v in ok_values):
        return "  %-58s n/a (%s)" % (name, detail)
    return "  %-58s %s (%s)" % (name, "holds" if cond() else "MISSES", detail)


def targets(data):
    """The issue's targets, compared on the medians."""
    out = ["targets (issue 6):"]
    for side, factor in (("r1", 3.0), ("r2", 2.0)):
        for wl in ("upload PUT", "upload PATCH"):
            ours, ref = get(data, wl, "throughput", side), get(data, wl, "throughput", "ref")
            out.append(check("%s %s >= %gx reference" % (wl, side, factor), (ours, ref),
                             lambda: ours >= factor * ref,
                             "%s vs %s MB/s" % (fmt(ours), fmt(ref))))
    nginx = get(data, "limits", "nginx GET of the blob", "limit")
    for side in ("r1", "r2"):
        ours, ref = get(data, "download", "throughput", side), get(data, "download", "throughput",
                                                                   "ref")
        out.append(check("download %s >= reference and >= 50%% of nginx" % side,
                         (ours, ref, nginx), lambda: ours >= ref and ours >= 0.5 * nginx,
                         "%s vs %s MB/s, nginx %s" % (fmt(ours), fmt(ref), fmt(nginx))))
    for wl in ("manifest GET tag", "manifest GET digest", "manifest HEAD tag",
               "manifest HEAD digest"):
        for side in ("r1", "r2"):
            rps, rrps = get(data, wl, "req/s", side), get(data, wl, "req/s", "ref")
            p99, rp99 = get(data, wl, "p99", side), get(data, wl, "p99", "ref")
            out.append(check("%s %s >= 20x req/s, lower p99" % (wl, side),
                             (rps, rrps, p99, rp99), lambda: rps >= 20 * rrps and p99 < rp99,
                             "%s vs %s req/s, p99 %s vs %s ms" % (fmt(rps), fmt(rrps), fmt(p99),
                                                                  fmt(rp99))))
    for side in ("r1", "r2"):
        rss = get(data, "8 concurrent uploads", "peak RSS", side)
        out.append(check("imageserver %s peak RSS <= 64 MiB" % side, (rss,),
                         lambda: rss <= 64, "%s MiB" % fmt(rss)))
    return out


def main():
    data, meta, order = load(sys.argv[1])
    head = ["workload", "metric", "reference", "ours r1", "r1/ref", "ours r2", "r2/ref"]
    table = rows(data, meta, order)
    widths = [max(len(r[i]) for r in [head] + table) for i in range(len(head))]
    for r in [head] + table:
        print("  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in
                        enumerate(zip(r, widths))).rstrip())
    print(limits(data, meta, order))
    print("\n".join(targets(data)))
    if len(sys.argv) > 2:
        with open(sys.argv[2], "w") as f:
            f.write("| " + " | ".join(head) + " |\n")
            f.write("|" + "|".join(["---"] * 2 + ["---:"] * 5) + "|\n")
            for r in table:
                f.write("| " + " | ".join(r) + " |\n")
            f.write("\n" + limits(data, meta, order) + "\n\n```\n" + "\n".join(targets(data))
                    + "\n```\n")


if __name__ == "__main__":
    main()
