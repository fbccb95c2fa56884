"""The compliance report: `index.html` (the claim matrix) and `compliance.json`, built from the
claim verdicts of a `roomtrust comply` run, plus the merged Cucumber JSON and JUnit XML."""

from reports.compliance.build import build_report, merge_cucumber, merge_junit

__all__ = ["build_report", "merge_cucumber", "merge_junit"]
