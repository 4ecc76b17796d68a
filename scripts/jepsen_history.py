#!/usr/bin/env python3
"""Writes a synthetic, valid Jepsen Kafka workload history (history.edn) of N
completed operations to stdout, for timing `kafkasim analyze` on long histories:

    python3 scripts/jepsen_history.py 1000000 > /tmp/history.edn

Ten processes; each sends one to three records to its own key and then polls that
key's records from where it left off (ok operations, each its own transaction), the
way Jepsen's `:send` and `:poll` operations look in `history.edn`.
"""
import sys

def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    processes, keys = 10, 8
    end = {k: 0 for k in range(keys)}      # next offset per key
    log = {k: [] for k in range(keys)}     # values per key, by offset
    pos = {}                               # (process, key) -> next offset to poll
    value = 0
    out = sys.stdout
    t = 0
    for i in range(n):
        p = i % processes
        k = p % keys
        t += 1000
        if (i // processes) % 2 == 0:
            sends = []
            for _ in range(1 + i % 3):
                value += 1
                sends.append((end[k], value))
                log[k].append(value)
                end[k] += 1
            inv = " ".join(f"[:send {k} {v}]" for _, v in sends)
            ok = " ".join(f"[:send {k} [{o} {v}]]" for o, v in sends)
            out.write(f"{{:type :invoke, :f :send, :value [{inv}], :time {t}, :process {p}}}\n")
            out.write(f"{{:type :ok, :f :send, :value [{ok}], :time {t + 500}, :process {p}}}\n")
        else:
            start = pos.get((p, k), 0)
            stop = min(end[k], start + 5)
            pairs = " ".join(f"[{o} {log[k][o]}]" for o in range(start, stop))
            pos[(p, k)] = stop
            out.write(f"{{:type :invoke, :f :poll, :value [[:poll]], :time {t}, :process {p}}}\n")
            out.write(f"{{:type :ok, :f :poll, :value [[:poll {{{k} [{pairs}]}}]], :time {t + 500}, :process {p}}}\n")

main()
