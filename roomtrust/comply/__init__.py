"""`roomtrust comply`: check every claim of the catalogue against a target and report a verdict
with evidence for each (PASS, FAIL, UNCHECKED or NOT APPLICABLE).

- `targets`: local stack, deployed region (target file), Pulumi graph, simulation results;
- `selection`: which scenarios a target runs, from their tags;
- `plugin`, `fixtures`: the pytest side (evidence folders, the target, a loopback capture);
- `tlsprobe`, `capture`, `controls`: the TLS probe, the scapy wire audit, their control servers;
- `checks`: the checks behind the Then steps, as functions of their evidence;
- `fixture_regions`: deliberately weak DM and meeting regions, the negative-control targets;
- `catalogue`, `verdicts`, `runner`, `cli`: from feature files and results to the report.
"""
