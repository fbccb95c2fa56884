"""`roomtrust comply`: check every claim of the catalogue against a target and report a verdict
with evidence for each (PASS, FAIL, UNCHECKED or NOT APPLICABLE).

- `targets`: local stack, deployed region (target file), Pulumi graph, simulation results;
- `selection`: which scenarios a target runs, from their tags;
- `plugin`, `fixtures`: the pytest side (evidence folders, the target, a loopback capture);
- `tlsprobe`, `capture`, `controls`: the TLS probe, the scapy wire audit, their control servers;
- `catalogue`, `verdicts`, `runner`, `cli`: from feature files and results to the report.
"""
