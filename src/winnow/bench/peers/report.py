"""The peers bench's table: one row per figure, one column per system, then Winnow's ratios and the goals."""

from __future__ import annotations

ROWS = [
    ("ndcg@10", "hybrid nDCG@10 (default fusion)", "{:.4f}"),
    ("ndcg@10_dense", "dense nDCG@10", "{:.4f}"),
    ("ndcg@10_lexical", "BM25 nDCG@10", "{:.4f}"),
    ("engine_p50_ms", "hybrid engine only p50 ms", "{:.2f}"),
    ("engine_p90_ms", "hybrid engine only p90 ms", "{:.2f}"),
    ("e2e_p50_ms", "hybrid end to end p50 ms", "{:.2f}"),
    ("e2e_p90_ms", "hybrid end to end p90 ms", "{:.2f}"),
    ("engine_qps", "QPS, 8 clients, vector given", "{:.0f}"),
    ("e2e_qps", "QPS, 8 clients, query text", "{:.0f}"),
    ("rss_mb", "RSS to serve text, MB", "{:.0f}"),
]

# (figure, peer, comparison, bound): Winnow's figure / the peer's must satisfy it.
GOALS = [
    ("engine_p50_ms", "milvus-lite", "<=", 1.0),
    ("engine_qps", "milvus-lite", ">=", 1.2),
    ("e2e_p50_ms", "in-process", "<=", 1.1),
    ("rss_mb", "milvus-lite", "<=", 1.2),
]


def goals(systems: dict) -> list[dict]:
    out = []
    w = systems.get("winnow", {})
    for key, peer, op, bound in GOALS:
        p = systems.get(peer, {})
        if key not in w or not p.get(key):
            continue
        ratio = w[key] / p[key]
        out.append({"figure": key, "peer": peer, "ratio": round(ratio, 3), "goal": f"{op} {bound}",
                    "met": ratio <= bound if op == "<=" else ratio >= bound})
    return out


def print_report(result: dict) -> None:
    systems = result["systems"]
    names = list(systems)
    cfg = result.get("config", {})
    print(f"\nwinnow bench peers: SciFact {cfg.get('docs')} docs, {cfg.get('queries')} queries, k={cfg.get('k')}, "
          f"lists of {cfg.get('window')}; {cfg.get('rounds')} interleaved rounds, medians; {result['machine']}")
    head = f"{'':<34}" + "".join(f"{n:>13}" for n in names)
    peers = [n for n in names if not n.startswith("winnow")]
    head += "".join(f"{'W/' + p[:8]:>12}" for p in peers)
    print(head)
    for key, label, fmt in ROWS:
        vals = [systems[n].get(key) for n in names]
        if all(v is None for v in vals):
            continue
        line = f"{label:<34}" + "".join(f"{fmt.format(v) if v is not None else '-':>13}" for v in vals)
        w = systems.get("winnow", {}).get(key)
        for p in peers:
            pv = systems[p].get(key)
            line += f"{(w / pv) if w is not None and pv else float('nan'):>12.2f}"
        print(line)
    if "rss_by_service_mb" in systems.get("winnow", {}):
        per = systems["winnow"]["rss_by_service_mb"]
        print("winnow RSS by service, MB: " + ", ".join(f"{k} {v:.0f}" for k, v in per.items()))
    cold = result.get("cold_start")
    if cold:
        print(f"winnow cold start: restart {cold['restart_s']} s; QPS (text, {result['config'].get('clients')} "
              f"clients) first {cold['first_qps']:.1f} vs warm {cold['warm_qps']:.1f} = {cold['ratio']:.2f} "
              f"(goal >= 0.8: {'met' if cold['ratio'] >= 0.8 else 'MISSED'})")
    for g in goals(systems):
        print(f"goal {g['figure']} winnow/{g['peer']} {g['goal']}: {g['ratio']:.2f} "
              f"{'met' if g['met'] else 'MISSED'}")
    for n in result.get("notes", []):
        print(f"note: {n}")
